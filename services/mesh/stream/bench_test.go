package stream

import (
	"io"
	"net"
	"testing"
)

const benchChunk = 1 << 20

// BenchmarkStreamThroughput measures one-way bulk transfer over one stream
// on the in-memory mesh (no hop latency; the cost is QUIC + TLS + copies).
func BenchmarkStreamThroughput(b *testing.B) {
	w := newWorld(4096)
	l := mustListen(b, w, "bench", ListenOptions{})
	sink := make(chan error, 1)
	go func() {
		c, err := l.AcceptContext(testCtx(b))
		if err != nil {
			sink <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		sink <- err
	}()
	c, err := DialConn(testCtx(b), w.client, "node2", "bench", DialOptions{})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-sink; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	_ = c.Close()
	waitEnded(b, c)
}

// BenchmarkTCPLoopback is the reference the stream layer is compared with.
func BenchmarkTCPLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	sink := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sink <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		sink <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if err := <-sink; err != nil {
		b.Fatal(err)
	}
	_ = c.Close()
}
