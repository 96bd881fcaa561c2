package proxy

import (
	"io"
	"net"
	"testing"
)

const benchChunk = 1 << 20

// sinkServer counts what each connection sends and reports it at EOF.
func sinkServer(tb testing.TB) (addr string, counts <-chan int64) {
	ch := make(chan int64, 16)
	addr = serveTCP(tb, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		ch <- n
	})
	return addr, ch
}

// benchSend writes b.N chunks to addr, half-closes and waits for the sink
// to have received them all.
func benchSend(b *testing.B, addr string, counts <-chan int64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, benchChunk)
	var sent int64
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if got := <-counts; got != sent {
		b.Fatalf("sink received %d bytes, sent %d", got, sent)
	}
	b.StopTimer()
}

// BenchmarkTCPProxy2Hops: client → tcp-server (node1) → mesh over two
// in-process hops → tcp-client (node3) → sink, all on loopback.
func BenchmarkTCPProxy2Hops(b *testing.B) {
	n1, _, n3 := newChain(b)
	sink, counts := sinkServer(b)
	addr := tcpChain(b, n1, n3, sink)
	benchSend(b, addr, counts)
}

// BenchmarkTCPLoopback is the reference: the same transfer straight to the
// sink.
func BenchmarkTCPLoopback(b *testing.B) {
	sink, counts := sinkServer(b)
	benchSend(b, sink, counts)
}
