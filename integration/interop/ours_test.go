package interop

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// ourNode is one of our mesh nodes running in the test process.
type ourNode struct {
	*mesh.Node
	t   *testing.T
	log *slog.Logger
}

// newOurNode starts our node id with upstream's default timers (so the wire
// behaviour is what a deployed node does), logging into a buffer that is
// printed when the test fails.
func newOurNode(t *testing.T, id string) *ourNode {
	t.Helper()
	return newOurNodeWith(t, mesh.Options{NodeID: id})
}

// newOurNodeWith is newOurNode with more options (the logger is set here).
func newOurNodeWith(t *testing.T, opts mesh.Options) *ourNode {
	t.Helper()
	id := opts.NodeID
	buf := &logBuffer{max: 256 << 10}
	logger := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger = logger
	n, err := mesh.New(opts)
	if err != nil {
		t.Fatalf("mesh.New(%s): %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutting down our node %s: %v", id, err)
		}
		if t.Failed() || os.Getenv("INTEROP_LOG") != "" {
			t.Logf("---- log of our node %s ----\n%s", id, buf.String())
		}
	})
	return &ourNode{Node: n, t: t, log: logger}
}

func (o *ourNode) add(b backends.Backend, err error, opts mesh.BackendOptions) {
	o.t.Helper()
	if err != nil {
		o.t.Fatalf("our node %s: backend options: %v", o.NodeID(), err)
	}
	if err := o.AddBackend(b, opts); err != nil {
		o.t.Fatalf("our node %s: %v", o.NodeID(), err)
	}
}

// ListenTCP adds a tcp-listener on 127.0.0.1 and returns its port.
func (o *ourNode) ListenTCP(tlsConf *tls.Config, opts mesh.BackendOptions) int {
	o.t.Helper()
	l, err := backends.NewTCPListener(backends.TCPListenerOptions{Address: "127.0.0.1:0", TLS: tlsConf, Logger: o.logger()})
	o.add(l, err, opts)
	return l.Addr().Port
}

// DialTCP adds a tcp-peer to addr.
func (o *ourNode) DialTCP(addr string, tlsConf *tls.Config, opts mesh.BackendOptions) {
	o.t.Helper()
	d, err := backends.NewTCPDialer(backends.TCPDialerOptions{Address: addr, Redial: true, TLS: tlsConf, Logger: o.logger()})
	o.add(d, err, opts)
}

// ListenUDP adds a udp-listener on 127.0.0.1 and returns its port.
func (o *ourNode) ListenUDP(opts mesh.BackendOptions) int {
	o.t.Helper()
	l, err := backends.NewUDPListener(backends.UDPListenerOptions{Address: "127.0.0.1:0", Logger: o.logger()})
	o.add(l, err, opts)
	return l.Addr().Port
}

// DialUDP adds a udp-peer to addr.
func (o *ourNode) DialUDP(addr string, opts mesh.BackendOptions) {
	o.t.Helper()
	d, err := backends.NewUDPDialer(backends.UDPDialerOptions{Address: addr, Redial: true, Logger: o.logger()})
	o.add(d, err, opts)
}

// ListenWS adds a ws-listener on 127.0.0.1 with path and returns its port.
func (o *ourNode) ListenWS(path string, tlsConf *tls.Config, opts mesh.BackendOptions) int {
	o.t.Helper()
	l, err := backends.NewWebsocketListener(backends.WebsocketListenerOptions{Address: "127.0.0.1:0", Path: path, TLS: tlsConf, Logger: o.logger()})
	o.add(l, err, opts)
	return l.Addr().Port
}

// DialWS adds a ws-peer to url.
func (o *ourNode) DialWS(url string, tlsConf *tls.Config, opts mesh.BackendOptions) {
	o.t.Helper()
	d, err := backends.NewWebsocketDialer(backends.WebsocketDialerOptions{URL: url, Redial: true, TLS: tlsConf, Logger: o.logger()})
	o.add(d, err, opts)
}

// logger is the node's logger for its backends (same buffer).
func (o *ourNode) logger() *slog.Logger { return o.log }

// waitConnected waits until our status lists peer with cost.
func (o *ourNode) waitConnected(peer string, cost float64) {
	o.t.Helper()
	testkit.Eventually(o.t, convergeTimeout, fmt.Sprintf("our %s lists connection to %s with cost %v", o.NodeID(), peer, cost), func() error {
		s := o.Status()
		for _, c := range s.Connections {
			if c.NodeID == peer && c.Cost == cost {
				return nil
			}
		}
		return fmt.Errorf("connections %+v", s.Connections)
	})
}

// waitRoute waits until our node routes to dest via next.
func (o *ourNode) waitRoute(dest, next string) {
	o.t.Helper()
	testkit.Eventually(o.t, convergeTimeout, fmt.Sprintf("our %s routes to %s via %s", o.NodeID(), dest, next), func() error {
		rt := o.Status().RoutingTable
		if rt[dest] == next {
			return nil
		}
		return fmt.Errorf("routing table %v", rt)
	})
}

// waitAd waits until our status holds the advertisement node:service.
func (o *ourNode) waitAd(node, service string, timeout time.Duration) mesh.Advertisement {
	o.t.Helper()
	var found mesh.Advertisement
	testkit.Eventually(o.t, timeout, fmt.Sprintf("our %s has the advertisement %s:%s", o.NodeID(), node, service), func() error {
		ads := o.Status().Advertisements
		for _, a := range ads {
			if a.NodeID == node && a.Service == service {
				found = a
				return nil
			}
		}
		return fmt.Errorf("advertisements %+v", ads)
	})
	return found
}
