package proxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"
	"testing"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// tcpChain starts tcp-client "svc" on node3 towards target and tcp-server on
// node1 towards it, and returns the tcp-server's local address.
func tcpChain(tb testing.TB, n1, n3 *mesh.Node, target string) string {
	tb.Helper()
	cl, err := NewTCPClient(n3, nil, config.TCPClient{Service: "svc", Address: target}, Options{Logger: quietLog})
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, cl)
	srv, err := NewTCPServer(n1, nil, config.TCPServer{Port: 0, BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "svc"},
		Options{Logger: quietLog})
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, srv)
	return srv.Addr().String()
}

// roundTrip sends data through addr to an echo server and checks that the
// same bytes come back (SHA-256), with the half-close crossing both ways.
func roundTrip(tb testing.TB, addr string, data []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	want := sha256.Sum256(data)
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("echo returned %d bytes, sha256 %x; want %d bytes, %x", n, h.Sum(nil), len(data), want)
	}
	return nil
}

func TestTCPProxyEcho(t *testing.T) {
	n1, _, n3 := newChain(t)
	addr := tcpChain(t, n1, n3, serveTCP(t, echo))
	for _, size := range []int{0, 1, 1 << 20, 20 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if err := roundTrip(t, addr, pattern(size, byte(size))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTCPProxyAdvertisement(t *testing.T) {
	n1, _, n3 := newChain(t)
	tcpChain(t, n1, n3, "127.0.0.1:9")
	want := map[string]string{"address": "127.0.0.1:9", "type": "TCP Proxy"}
	testkit.Eventually(t, bound, "node1 sees node3's svc advertised with ConnType 1 and the TCP Proxy tags", func() error {
		for _, ad := range n1.Status().Advertisements {
			if ad.NodeID == "node3" && ad.Service == "svc" {
				if ad.ConnType == mesh.ConnTypeStream && maps.Equal(ad.Tags, want) {
					return nil
				}
				return fmt.Errorf("advertised with ConnType %d, tags %v", ad.ConnType, ad.Tags)
			}
		}
		return errors.New("no such advertisement yet")
	})
}

// Client half-closes, then still receives the answer.
func TestTCPProxyClientHalfClose(t *testing.T) {
	n1, _, n3 := newChain(t)
	addr := tcpChain(t, n1, n3, serveTCP(t, hashReply))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := pattern(100<<10, 7)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("answer %x, want %x", got, want)
	}
}

// Server half-closes first, then still receives the client's answer.
func TestTCPProxyServerHalfClose(t *testing.T) {
	n1, _, n3 := newChain(t)
	greeting := pattern(50<<10, 9)
	received := make(chan []byte, 1)
	target := serveTCP(t, func(c net.Conn) {
		if _, err := c.Write(greeting); err != nil {
			return
		}
		_ = c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		received <- got
	})
	addr := tcpChain(t, n1, n3, target)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, greeting) {
		t.Fatalf("greeting: %d bytes, %v; want %d bytes", len(got), err, len(greeting))
	}
	if _, err := c.Write([]byte("thanks")); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if r := <-received; string(r) != "thanks" {
		t.Fatalf("server received %q, want thanks", r)
	}
}

func TestTCPProxyConcurrent(t *testing.T) {
	n1, _, n3 := newChain(t)
	addr := tcpChain(t, n1, n3, serveTCP(t, echo))
	const conns = 24
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			if err := roundTrip(t, addr, pattern(64<<10+i, byte(i))); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Nothing listens on the remote service: the local connection is closed
// (upstream leaves it open and silent).
func TestTCPProxyServiceUnknown(t *testing.T) {
	n1, _, _ := newChain(t)
	srv, err := NewTCPServer(n1, nil, config.TCPServer{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "nothing"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(timeNowPlusBound())
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || isTimeoutErr(err) {
		t.Fatalf("read = %d, %v; want the connection closed", n, err)
	}
}

// The far address refuses connections: the mesh stream is closed, so the
// local client's connection ends too.
func TestTCPProxyTargetRefused(t *testing.T) {
	n1, _, n3 := newChain(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	addr := tcpChain(t, n1, n3, dead)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(timeNowPlusBound())
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || isTimeoutErr(err) {
		t.Fatalf("read = %d, %v; want the connection closed", n, err)
	}
}

// remotenode=localhost dials a service on the same node.
func TestTCPProxyLocalhost(t *testing.T) {
	n1, _, _ := newChain(t)
	cl, err := NewTCPClient(n1, nil, config.TCPClient{Service: "loc", Address: serveTCP(t, echo)}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, cl)
	srv, err := NewTCPServer(n1, nil, config.TCPServer{BindAddr: "127.0.0.1", RemoteNode: "localhost", RemoteService: "loc"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	if err := roundTrip(t, srv.Addr().String(), pattern(10000, 3)); err != nil {
		t.Fatal(err)
	}
}
