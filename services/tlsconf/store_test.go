package tlsconf

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	p := getPKI(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := NewStore("node1",
		[]ServerOptions{
			{Name: "srv", Cert: p.serverCert, Key: p.serverKey},
			{Name: "srv", Cert: p.serverCert, Key: p.serverKey, MinTLS13: true}, // later wins
		},
		[]ClientOptions{{Name: "cli", RootCAs: p.caCert, PinnedServerCert: []string{certFingerprint(t, p.serverCert)}}},
		logger)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "tls-server defined twice") {
		t.Errorf("no duplicate warning logged: %q", logs.String())
	}
	srv, err := s.Server("srv")
	if err != nil || srv.MinVersion != tls.VersionTLS13 {
		t.Fatalf("Server(srv) = %v, %v", srv, err)
	}
	srv.MinVersion = tls.VersionTLS10
	if again, _ := s.Server("srv"); again.MinVersion != tls.VersionTLS13 {
		t.Error("Server returned a shared config, not a copy")
	}
	for _, name := range []string{"nope"} {
		if _, err := s.Server(name); errString(err) != "unknown TLS config nope" {
			t.Errorf("Server(%q) error %v", name, err)
		}
		if _, err := s.Client(name); errString(err) != "unknown TLS config nope" {
			t.Errorf("Client(%q) error %v", name, err)
		}
		if _, err := s.ClientForNode(name, "x"); errString(err) != "unknown TLS config nope" {
			t.Errorf("ClientForNode(%q) error %v", name, err)
		}
	}
	if c, err := s.Server(""); c != nil || err != nil {
		t.Errorf("Server(\"\") = %v, %v; want no TLS", c, err)
	}
	if c, err := s.Client(""); c != nil || err != nil {
		t.Errorf("Client(\"\") = %v, %v; want no TLS", c, err)
	}
	def, err := s.Client(DefaultClientName)
	if err != nil || def.MinVersion != tls.VersionTLS12 || def.RootCAs != nil {
		t.Errorf("default client %v, %v", def, err)
	}
	// The stored client works end to end against the stored server.
	cli, err := s.ClientForNode("cli", "node1")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ = s.Server("srv")
	if res := handshake(t, srv, cli, nil); !res.ok() {
		t.Fatalf("store configs: client %v server %v", res.client, res.server)
	}
	hostCli, err := s.ClientForHost("cli", "localhost")
	if err != nil || hostCli.ServerName != "localhost" {
		t.Fatalf("ClientForHost: %v %v", hostCli, err)
	}
}

func TestStoreErrors(t *testing.T) {
	p := getPKI(t)
	tests := []struct {
		name    string
		servers []ServerOptions
		clients []ClientOptions
		wantErr string
	}{
		{"server self-check", []ServerOptions{{Name: "s", Cert: p.clientCert, Key: p.clientKey}}, nil,
			"error preparing tls server config: nodeID=node1 not found in certificate name(s)"},
		{"client pin", nil, []ClientOptions{{Name: "c", PinnedServerCert: []string{"0"}}},
			"error preparing tls client config: error decoding fingerprints: error decoding fingerprint"},
		{"unnamed server", []ServerOptions{{Cert: p.serverCert, Key: p.serverKey}}, nil,
			"error preparing tls server config: must provide a name"},
		{"unnamed client", nil, []ClientOptions{{}}, "error preparing tls client config: must provide a name"},
	}
	for _, tt := range tests {
		_, err := NewStore("node1", tt.servers, tt.clients, nil)
		if !strings.HasPrefix(errString(err), tt.wantErr) {
			t.Errorf("%s: error %q, want prefix %q", tt.name, errString(err), tt.wantErr)
		}
	}
	// A user-defined "default" replaces the built-in one.
	s, err := NewStore("node1", nil, []ClientOptions{{Name: "default", RootCAs: p.caCert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Client("default"); c.RootCAs == nil {
		t.Error("configured default client did not replace the built-in one")
	}
}
