package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/meshclient"
)

// pingSamples pings node n times through the router's MeshService and
// returns the RTTs the router measured (mesh only) and the RTTs seen by
// this client (mesh plus the gRPC call).
func pingSamples(ctx context.Context, c *meshclient.Client, node string, n int) (meshRTT, callRTT []time.Duration, err error) {
	for i := range n {
		t0 := time.Now()
		res, err := c.Ping(ctx, node, meshclient.PingOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("ping %s #%d: %w", node, i, err)
		}
		callRTT = append(callRTT, time.Since(t0))
		meshRTT = append(meshRTT, res.RTT)
	}
	return meshRTT, callRTT, nil
}

// statusSamples times n GetStatus calls over the gRPC connection of c.
func statusSamples(ctx context.Context, c *meshclient.Client, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := c.Status(ctx); err != nil {
			return nil, fmt.Errorf("GetStatus #%d: %w", i, err)
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// maxCtlLine bounds a reply line read from the control socket.
const maxCtlLine = 4 << 20

// ctlStatusSamples times n `status` commands on one receptorctl-protocol
// connection to the Unix socket at path (after the greeting).
func ctlStatusSamples(ctx context.Context, path string, n int) ([]time.Duration, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial control socket %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxCtlLine)
	if !sc.Scan() {
		return nil, fmt.Errorf("control greeting from %s: %v", path, sc.Err())
	}
	if !strings.HasPrefix(sc.Text(), "Receptor Control, node ") {
		return nil, fmt.Errorf("control greeting from %s: %q", path, sc.Text())
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := c.Write([]byte("status\n")); err != nil {
			return nil, fmt.Errorf("send status #%d: %w", i, err)
		}
		if !sc.Scan() {
			return nil, fmt.Errorf("status reply #%d: %v", i, sc.Err())
		}
		out = append(out, time.Since(t0))
		if !strings.HasPrefix(sc.Text(), "{") {
			return nil, fmt.Errorf("status reply #%d: %q", i, oneLine(sc.Text()))
		}
	}
	return out, nil
}
