package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/meshclient"
)

// sink is a local TCP server that counts the bytes of each connection and
// reports the count when the connection reaches EOF.
type sink struct {
	ln     net.Listener
	counts chan int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s := &sink{ln: ln, counts: make(chan int64, 16), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 1<<20))
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
			select {
			case s.counts <- n:
			default: // nobody waiting: a stray connection
			}
		}()
	}
}

// drain forgets counts of earlier connections.
func (s *sink) drain() {
	for {
		select {
		case <-s.counts:
		default:
			return
		}
	}
}

func (s *sink) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// halfCloser is a connection whose sending side can be closed alone.
type halfCloser interface {
	io.Writer
	CloseWrite() error
}

// transfer writes 1 MiB chunks to c until limit bytes or dur passed,
// half-closes, and waits for the sink to report the connection's count.
// The time runs from start (before the dial) to the sink's EOF.
func transfer(ctx context.Context, s *sink, c halfCloser, start time.Time, limit int64, dur time.Duration) (int64, time.Duration, error) {
	buf := make([]byte, 1<<20)
	var sent int64
	for sent < limit && time.Since(start) < dur {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			return sent, 0, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return sent, 0, fmt.Errorf("close write: %w", err)
	}
	select {
	case got := <-s.counts:
		el := time.Since(start)
		if got != sent {
			return got, el, fmt.Errorf("sink received %d bytes, sent %d", got, sent)
		}
		return got, el, nil
	case <-ctx.Done():
		return sent, 0, fmt.Errorf("waiting for the sink: %w", ctx.Err())
	}
}

// tcpTransfer dials addr and runs transfer over it.
func tcpTransfer(ctx context.Context, s *sink, addr string, limit int64, dur time.Duration) (int64, time.Duration, error) {
	s.drain()
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, 0, errors.New("not a TCP connection")
	}
	return transfer(ctx, s, tc, start, limit, dur)
}

// dialOptions are the MeshService dial options of the benchmark: the
// mesh's built-in TLS, like the tcp-server it is compared with.
func dialOptions() meshclient.DialOptions { return meshclient.DialOptions{} }
