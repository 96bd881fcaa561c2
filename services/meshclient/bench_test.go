package meshclient_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/meshapi/apitest"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/meshclient"
)

// BenchmarkDialThroughput sends bytes one way to a sink on node b: through
// the router's gRPC Dial stream ("grpc") and through the same kind of mesh
// stream used in-process ("mesh"), so the gRPC layer's cost shows as the
// difference in MB/s.
func BenchmarkDialThroughput(b *testing.B) {
	m := apitest.NewMesh(b, "a", "b")
	_, cc := apitest.Serve(b, meshapi.Options{Node: m.Nodes["a"]})
	client := meshclient.New(cc)
	serveMesh(b, m.Nodes["b"], "sink", func(c *stream.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_ = c.CloseWrite()
	})
	const total = 8 << 20
	chunk := make([]byte, 256<<10)
	run := func(b *testing.B, dial func() (net.Conn, error)) {
		b.SetBytes(total)
		b.ReportAllocs()
		for b.Loop() {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			for sent := 0; sent < total; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				b.Fatal(err)
			}
			// The sink half-closes after reading everything: all bytes arrived.
			if _, err := io.Copy(io.Discard, c); err != nil {
				b.Fatal(err)
			}
			_ = c.Close()
		}
	}
	b.Run("grpc", func(b *testing.B) {
		run(b, func() (net.Conn, error) {
			return client.Dial(context.Background(), "b", "sink", meshclient.DialOptions{})
		})
	})
	b.Run("mesh", func(b *testing.B) {
		run(b, func() (net.Conn, error) {
			return stream.Dial(context.Background(), m.Nodes["a"], "b", "sink", stream.DialOptions{Logger: apitest.QuietLogger})
		})
	})
}
