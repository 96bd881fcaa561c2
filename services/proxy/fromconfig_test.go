package proxy

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

func TestFromConfig(t *testing.T) {
	n1, _, _ := newChain(t)
	cfg := &config.Config{
		TCPServers: []config.TCPServer{{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "a"}},
		TCPClients: []config.TCPClient{{Service: "b", Address: "127.0.0.1:1"}},
		UDPServers: []config.UDPServer{{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "c"}},
		UDPClients: []config.UDPClient{{Service: "d", Address: "127.0.0.1:1"}},
		UnixSocketServers: []config.UnixSocketServer{{Filename: filepath.Join(t.TempDir(), "s"), Permissions: 0o600,
			RemoteNode: "node3", RemoteService: "e"}},
		UnixSocketClients: []config.UnixSocketClient{{Service: "f", Filename: "/nonexistent"}},
	}
	proxies, err := FromConfig(n1, nil, cfg, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range proxies {
		kinds = append(kinds, p.Kind())
	}
	want := []string{"tcp-server", "tcp-client", "udp-server", "udp-client", "unix-socket-server", "unix-socket-client"}
	if len(kinds) != len(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := StartAll(ctx, proxies)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The mesh services are bound while running and released after.
	for _, svc := range []string{"b", "d", "f"} {
		if pc, err := n1.ListenPacket(svc); err == nil {
			_ = pc.Close()
			t.Errorf("service %s not bound while running", svc)
		}
	}
	cancel()
	wait()
	for _, svc := range []string{"b", "d", "f"} {
		pc, err := n1.ListenPacket(svc)
		if err != nil {
			t.Errorf("service %s still bound after stop: %v", svc, err)
			continue
		}
		_ = pc.Close()
	}
}

func TestFromConfigErrors(t *testing.T) {
	n1, _, _ := newChain(t)
	tests := []struct {
		name string
		cfg  config.Config
		want error
	}{
		{"unknown tls-server", config.Config{TCPServers: []config.TCPServer{{RemoteNode: "n", RemoteService: "s", TLSServer: "x"}}}, nil},
		{"unknown tls-client", config.Config{TCPClients: []config.TCPClient{{Service: "s", Address: "h:1", TLSClient: "x"}}}, nil},
		{"address without port", config.Config{TCPClients: []config.TCPClient{{Service: "s", Address: "h"}}}, nil},
		{"service too long", config.Config{UDPClients: []config.UDPClient{{Service: "ninechars", Address: "h:1"}}}, nil},
		{"empty remote node", config.Config{UDPServers: []config.UDPServer{{RemoteService: "s"}}}, nil},
		{"bad permissions", config.Config{UnixSocketServers: []config.UnixSocketServer{{Filename: "f", Permissions: -1, RemoteNode: "n", RemoteService: "s"}}}, nil},
		{"ip-router", config.Config{IPRouters: []config.IPRouter{{NetworkName: "net"}}}, ErrIPRouterUnsupported},
	}
	store, err := tlsconf.NewStore("node1", nil, nil, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromConfig(n1, store, &tc.cfg, Options{Logger: quietLog})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("FromConfig = %v, want an error (%v)", err, tc.want)
			}
		})
	}
}

// A start failure (busy port) stops the proxies already started.
func TestStartAllRollsBack(t *testing.T) {
	n1, _, _ := newChain(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	cfg := &config.Config{
		TCPServers: []config.TCPServer{{BindAddr: "127.0.0.1", Port: port, RemoteNode: "node3", RemoteService: "a"}},
		UDPClients: []config.UDPClient{{Service: "d", Address: "127.0.0.1:1"}},
	}
	// udp-client first so it is running when tcp-server fails.
	proxies, err := FromConfig(n1, nil, cfg, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	proxies[0], proxies[1] = proxies[1], proxies[0]
	if _, err := StartAll(context.Background(), proxies); err == nil {
		t.Fatalf("StartAll on busy port %s succeeded", strconv.Itoa(port))
	}
	pc, err := n1.ListenPacket("d")
	if err != nil {
		t.Fatalf("udp-client service still bound after the failed start: %v", err)
	}
	_ = pc.Close()
}
