package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// meshAddr stands in for a netceptor address "node:service".
type meshAddr string

func (a meshAddr) Network() string { return "netceptor" }
func (a meshAddr) String() string  { return string(a) }

// remoteAddrConn lets a test choose what the server sees as RemoteAddr.
type remoteAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteAddrConn) RemoteAddr() net.Addr { return c.remote }

type handshakeResult struct {
	client, server error
	state          tls.ConnectionState // client side, valid if client == nil
}

func (r handshakeResult) ok() bool { return r.client == nil && r.server == nil }

// handshake runs a TLS handshake over loopback TCP. The server sends one
// byte after its handshake and the client reads it, so a client certificate
// rejected after the client's TLS 1.3 handshake completed still shows up as
// a client error. serverRemote, if set, replaces the server's RemoteAddr.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config, serverRemote net.Addr) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverDone := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
		var conn net.Conn = raw
		if serverRemote != nil {
			conn = remoteAddrConn{Conn: raw, remote: serverRemote}
		}
		srv := tls.Server(conn, serverCfg)
		if err := srv.HandshakeContext(ctx); err != nil {
			serverDone <- err
			return
		}
		_, err = srv.Write([]byte{42})
		serverDone <- err
	}()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	cli := tls.Client(raw, clientCfg)
	var res handshakeResult
	res.client = cli.HandshakeContext(ctx)
	if res.client == nil {
		buf := make([]byte, 1)
		if _, err := cli.Read(buf); err != nil {
			res.client = err
		} else if buf[0] != 42 {
			res.client = errors.New("wrong byte from server")
		}
		res.state = cli.ConnectionState()
	}
	raw.Close()
	res.server = <-serverDone
	return res
}

func mustServer(t *testing.T, o ServerOptions, node string) *tls.Config {
	t.Helper()
	cfg, err := NewServerConfig(o, node)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClient(t *testing.T, o ClientOptions, node string) *tls.Config {
	t.Helper()
	cfg, err := NewClientConfig(o, node)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func certFingerprint(t *testing.T, path string) string {
	t.Helper()
	c, err := loadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return Fingerprint(c.Raw)
}

// Stream-service verification: the client checks the server's node ID (docs/protocol.md §9.3).
func TestHandshakeServerNodeID(t *testing.T) {
	p := getPKI(t)
	server := mustServer(t, ServerOptions{Name: "srv", Cert: p.serverCert, Key: p.serverKey}, "node1")
	otherServer := mustServer(t, ServerOptions{Name: "srv", Cert: p.otherCert, Key: p.otherKey}, "node1")
	noIDServer := mustServer(t, ServerOptions{Name: "srv", Cert: p.noIDCert, Key: p.noIDKey, SkipReceptorNamesCheck: true}, "node1")
	base := ClientOptions{Name: "cli", RootCAs: p.caCert}
	wrongPin := strings.Repeat("00", 32)

	tests := []struct {
		name    string
		server  *tls.Config
		client  ClientOptions
		target  string
		wantErr string // substring of the client error; "" = success
	}{
		{"right node", server, base, "node1", ""},
		{"wrong node", server, base, "node3", "x509: certificate is valid for Receptor node ID node1, not node3"},
		{"case matters", server, base, "NODE1", "not NODE1"},
		{"server cert without node ID", noIDServer, base, "node1", "not valid for any Receptor node IDs"},
		{"unknown CA", otherServer, base, "node1", "certificate signed by unknown authority"},
		{"pin right", server, withPins(base, certFingerprint(t, p.serverCert)), "node1", ""},
		{"pin wrong", server, withPins(base, wrongPin), "node1", "does not match any pinned fingerprint"},
		{"pin right but wrong node", server, withPins(base, certFingerprint(t, p.serverCert)), "node3", "not node3"},
		{"insecureskipverify ignores node, CA and pins", otherServer,
			ClientOptions{Name: "cli", InsecureSkipVerify: true, PinnedServerCert: []string{wrongPin}}, "node3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := ForNode(mustClient(t, tt.client, "node2"), tt.target)
			res := handshake(t, tt.server, cli, nil)
			if tt.wantErr == "" {
				if !res.ok() {
					t.Fatalf("handshake failed: client %v, server %v", res.client, res.server)
				}
				return
			}
			if res.client == nil || !strings.Contains(res.client.Error(), tt.wantErr) {
				t.Fatalf("client error %v, want it to contain %q", res.client, tt.wantErr)
			}
		})
	}
}

func withPins(o ClientOptions, pins ...string) ClientOptions {
	o.PinnedServerCert = pins
	return o
}

// Backend verification: ServerName = host, DNS checked, no node-ID check.
func TestHandshakeBackendHost(t *testing.T) {
	p := getPKI(t)
	server := mustServer(t, ServerOptions{Name: "srv", Cert: p.serverCert, Key: p.serverKey}, "node1")
	noIDServer := mustServer(t, ServerOptions{Name: "srv", Cert: p.noIDCert, Key: p.noIDKey, SkipReceptorNamesCheck: true}, "x")
	base := ClientOptions{Name: "cli", RootCAs: p.caCert}
	tests := []struct {
		name    string
		server  *tls.Config
		client  ClientOptions
		host    string
		wantErr string
	}{
		{"dns name", server, base, "localhost", ""},
		{"ip address", server, base, "127.0.0.1", ""},
		{"no node ID needed", noIDServer, base, "localhost", ""},
		{"wrong host", server, base, "example.org", "x509: certificate is valid for localhost, not example.org"},
		{"pin wrong", server, withPins(base, strings.Repeat("11", 64)), "localhost", "does not match any pinned fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, ForHost(mustClient(t, tt.client, "node2"), tt.host), nil)
			if tt.wantErr == "" {
				if !res.ok() {
					t.Fatalf("handshake failed: client %v, server %v", res.client, res.server)
				}
				return
			}
			if res.client == nil || !strings.Contains(res.client.Error(), tt.wantErr) {
				t.Fatalf("client error %v, want it to contain %q", res.client, tt.wantErr)
			}
		})
	}
}

// Server-side client verification, including the docs/protocol.md §10.3 node check.
func TestHandshakeClientCert(t *testing.T) {
	p := getPKI(t)
	srvOpts := ServerOptions{Name: "srv", Cert: p.serverCert, Key: p.serverKey}
	withCert := ClientOptions{Name: "cli", Cert: p.clientCert, Key: p.clientKey, RootCAs: p.caCert}
	foreignCert := ClientOptions{Name: "cli", Cert: p.otherCert, Key: p.otherKey, RootCAs: p.caCert, SkipReceptorNamesCheck: true}
	noCert := ClientOptions{Name: "cli", RootCAs: p.caCert}
	require := srvOpts
	require.RequireClientCert = true
	require.ClientCAs = p.caCert
	casOnly := srvOpts
	casOnly.ClientCAs = p.caCert
	pinned := require
	pinned.PinnedClientCert = []string{certFingerprint(t, p.clientCert)}
	pinnedWrong := require
	pinnedWrong.PinnedClientCert = []string{strings.Repeat("ab", 32)}
	pinsNoClientAuth := srvOpts
	pinsNoClientAuth.PinnedClientCert = []string{strings.Repeat("ab", 32)}

	requireCfg := mustServer(t, require, "node1")
	tests := []struct {
		name    string
		server  *tls.Config
		client  ClientOptions
		remote  net.Addr
		wantErr string // substring of the server error; "" = success
	}{
		{"require with cert", requireCfg, withCert, nil, ""},
		{"require without cert", requireCfg, noCert, nil, "client didn't provide a certificate"},
		// Go clients withhold a cert the server's CA list does not cover; the
		// test forces it out (see below) to reach the server's chain check.
		{"require with cert from other CA", requireCfg, foreignCert, nil, "unknown authority"},
		{"clientcas only without cert (upstream quirk)", mustServer(t, casOnly, "node1"), noCert, nil, "RVF failed: peer certificate missing"},
		{"clientcas only with cert", mustServer(t, casOnly, "node1"), withCert, nil, ""},
		{"no client auth", mustServer(t, srvOpts, "node1"), noCert, nil, ""},
		{"pins ignored without client auth", mustServer(t, pinsNoClientAuth, "node1"), noCert, nil, ""},
		{"client pin right", mustServer(t, pinned, "node1"), withCert, nil, ""},
		{"client pin wrong", mustServer(t, pinnedWrong, "node1"), withCert, nil, "does not match any pinned fingerprint"},
		{"stream: client node matches", WithClientNodeCheck(requireCfg), withCert, meshAddr("node2:Abc12345"), ""},
		{"stream: client node differs", WithClientNodeCheck(requireCfg), withCert, meshAddr("node9:Abc12345"),
			"x509: certificate is valid for Receptor node ID node2, not node9"},
		{"stream: no client auth, no node check", WithClientNodeCheck(mustServer(t, srvOpts, "node1")), noCert, meshAddr("node9:x"), ""},
		{"per-connection config", ForClientNode(requireCfg, "node2"), withCert, nil, ""},
		{"per-connection config wrong node", ForClientNode(requireCfg, "node7"), withCert, nil, "not node7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := ForNode(mustClient(t, tt.client, "node2"), "node1")
			if tt.client.Cert == p.otherCert {
				own := cli.Certificates[0]
				cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &own, nil }
			}
			res := handshake(t, tt.server, cli, tt.remote)
			if tt.wantErr == "" {
				if !res.ok() {
					t.Fatalf("handshake failed: client %v, server %v", res.client, res.server)
				}
				return
			}
			if res.server == nil || !strings.Contains(res.server.Error(), tt.wantErr) {
				t.Fatalf("server error %v, want it to contain %q", res.server, tt.wantErr)
			}
			if res.client == nil {
				t.Error("client saw no failure")
			}
		})
	}
}

func TestHandshakeVersions(t *testing.T) {
	p := getPKI(t)
	srv := ServerOptions{Name: "srv", Cert: p.serverCert, Key: p.serverKey}
	srv13 := srv
	srv13.MinTLS13 = true
	cli := ClientOptions{Name: "cli", RootCAs: p.caCert}
	cli13 := cli
	cli13.MinTLS13 = true

	t.Run("mintls13 server, default client", func(t *testing.T) {
		res := handshake(t, mustServer(t, srv13, "node1"), ForNode(mustClient(t, cli, "n"), "node1"), nil)
		if !res.ok() || res.state.Version != tls.VersionTLS13 {
			t.Fatalf("client %v server %v version %x", res.client, res.server, res.state.Version)
		}
	})
	t.Run("tls 1.2 client gets a restricted suite", func(t *testing.T) {
		c := ForNode(mustClient(t, cli, "n"), "node1")
		c.MaxVersion = tls.VersionTLS12
		res := handshake(t, mustServer(t, srv, "node1"), c, nil)
		if !res.ok() || res.state.Version != tls.VersionTLS12 {
			t.Fatalf("client %v server %v version %x", res.client, res.server, res.state.Version)
		}
		allowed := map[uint16]bool{}
		for _, s := range baseConfig(false).CipherSuites {
			allowed[s] = true
		}
		if !allowed[res.state.CipherSuite] {
			t.Errorf("negotiated suite %s outside the allowed list", tls.CipherSuiteName(res.state.CipherSuite))
		}
	})
	t.Run("mintls13 server refuses tls 1.2 client", func(t *testing.T) {
		c := ForNode(mustClient(t, cli, "n"), "node1")
		c.MaxVersion = tls.VersionTLS12
		res := handshake(t, mustServer(t, srv13, "node1"), c, nil)
		if res.server == nil || res.client == nil {
			t.Fatalf("TLS 1.2 client accepted by mintls13 server: client %v server %v", res.client, res.server)
		}
	})
	t.Run("mintls13 client refuses tls 1.2 server", func(t *testing.T) {
		s := mustServer(t, srv, "node1")
		s.MaxVersion = tls.VersionTLS12
		res := handshake(t, s, ForNode(mustClient(t, cli13, "n"), "node1"), nil)
		if res.client == nil {
			t.Fatal("mintls13 client accepted TLS 1.2")
		}
	})
	t.Run("tls 1.2 client without a shared curve", func(t *testing.T) {
		c := ForNode(mustClient(t, cli, "n"), "node1")
		c.MaxVersion = tls.VersionTLS12
		c.CurvePreferences = []tls.CurveID{tls.X25519}
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
		res := handshake(t, mustServer(t, srv, "node1"), c, nil)
		if res.ok() {
			t.Fatal("X25519-only client negotiated ECDHE with a P-curve-only server")
		}
	})
}

// TestOnlyForwardSecretSuites: every configuration this package builds,
// server or client, refuses a TLS 1.2 peer that offers only suites without
// an ephemeral key exchange, and still talks to one offering ECDHE.
func TestOnlyForwardSecretSuites(t *testing.T) {
	p := getPKI(t)
	nonFS := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
	restrict := func(c *tls.Config, suites []uint16) *tls.Config {
		c = c.Clone()
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = suites
		return c
	}
	srv := mustServer(t, ServerOptions{Name: "srv", Cert: p.serverCert, Key: p.serverKey}, "node1")
	insecureSrv, err := InsecureServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewStore("node2", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defClient, err := store.Client(DefaultClientName)
	if err != nil {
		t.Fatal(err)
	}
	defClient = defClient.Clone()
	defClient.RootCAs, err = loadCertPool(p.caCert)
	if err != nil {
		t.Fatal(err)
	}
	defClient.ServerName = "localhost"
	named := ForNode(mustClient(t, ClientOptions{Name: "cli", RootCAs: p.caCert}, "node2"), "node1")
	fsSuite := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}

	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		side           string // which side is ours: "server" or "client"
	}{
		{"tls-server", srv, named, "server"},
		{"insecure mesh-service server", insecureSrv, InsecureClientConfig(), "server"},
		{"tls-client", srv, named, "client"},
		{"default tls-client", srv, defClient, "client"},
		{"insecure mesh-service client", insecureSrv, InsecureClientConfig(), "client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := func(suites []uint16) handshakeResult {
				if tc.side == "server" {
					return handshake(t, tc.server, restrict(tc.client, suites), nil)
				}
				return handshake(t, restrict(tc.server, suites), tc.client, nil)
			}
			if res := peer(nonFS); res.ok() {
				t.Fatalf("handshake with a peer offering only %s succeeded (suite %s)",
					tls.CipherSuiteName(nonFS[0]), tls.CipherSuiteName(res.state.CipherSuite))
			}
			if !strings.HasPrefix(tc.name, "insecure") { // its certificate is not RSA
				if res := peer(fsSuite); !res.ok() {
					t.Fatalf("TLS 1.2 peer offering ECDHE: client %v server %v", res.client, res.server)
				}
			}
		})
	}
}
