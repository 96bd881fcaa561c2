package backends

import (
	"bufio"
	"net"
	"testing"
)

const benchMessageSize = 16 << 10

// BenchmarkTCPSessionThroughput moves 16 KiB messages one way across one
// TCP session, next to the same framing written straight to a raw TCP
// connection, so the session's overhead (copy, queues, goroutines) shows.
func BenchmarkTCPSessionThroughput(b *testing.B) {
	msg := pattern(benchMessageSize, 1)
	b.Run("session", func(b *testing.B) {
		l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		lr := start(b, l)
		d, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String()})
		if err != nil {
			b.Fatal(err)
		}
		dr := start(b, d)
		ds, ls := <-dr.sessions, <-lr.sessions
		b.SetBytes(benchMessageSize)
		b.ResetTimer()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if err := ds.Send(msg); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for range b.N {
			if _, err := ls.Recv(failAfter); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("raw-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		out, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		in, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		frame, _ := AppendFrame(nil, msg)
		br := bufio.NewReaderSize(in, tcpReadBufferSize)
		b.SetBytes(benchMessageSize)
		b.ResetTimer()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if _, err := out.Write(frame); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for range b.N {
			if _, err := ReadFrame(br); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	})
}
