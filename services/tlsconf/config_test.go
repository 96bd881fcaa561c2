package tlsconf

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBaseConfig(t *testing.T) {
	c := baseConfig(false)
	if c.MinVersion != tls.VersionTLS12 || c.MaxVersion != 0 {
		t.Errorf("versions %x..%x", c.MinVersion, c.MaxVersion)
	}
	if want := []tls.CurveID{tls.CurveP521, tls.CurveP384, tls.CurveP256}; !slices.Equal(c.CurvePreferences, want) {
		t.Errorf("curves %v", c.CurvePreferences)
	}
	if !slices.Equal(c.CipherSuites, CipherSuites()) {
		t.Errorf("suites %v", c.CipherSuites)
	}
	// Every TLS 1.2 suite has an ephemeral key exchange.
	for _, id := range CipherSuites() {
		if name := tls.CipherSuiteName(id); !strings.HasPrefix(name, "TLS_ECDHE_") {
			t.Errorf("suite %s is not forward secret", name)
		}
	}
	c13 := baseConfig(true)
	if c13.MinVersion != tls.VersionTLS13 || c13.CipherSuites != nil || c13.CurvePreferences != nil {
		t.Errorf("mintls13 config %+v", c13)
	}
}

func TestServerConfigModes(t *testing.T) {
	p := getPKI(t)
	tests := []struct {
		name string
		opts ServerOptions
		want tls.ClientAuthType
	}{
		{"plain", ServerOptions{}, tls.NoClientCert},
		{"clientcas", ServerOptions{ClientCAs: p.caCert}, tls.VerifyClientCertIfGiven},
		{"require", ServerOptions{RequireClientCert: true}, tls.RequireAndVerifyClientCert},
		{"require and cas", ServerOptions{RequireClientCert: true, ClientCAs: p.caCert}, tls.RequireAndVerifyClientCert},
	}
	for _, tt := range tests {
		tt.opts.Name, tt.opts.Cert, tt.opts.Key = "s", p.serverCert, p.serverKey
		cfg := mustServer(t, tt.opts, "node1")
		if cfg.ClientAuth != tt.want {
			t.Errorf("%s: ClientAuth %v, want %v", tt.name, cfg.ClientAuth, tt.want)
		}
		if (cfg.ClientCAs != nil) != (tt.opts.ClientCAs != "") {
			t.Errorf("%s: ClientCAs set = %v", tt.name, cfg.ClientCAs != nil)
		}
		if len(cfg.Certificates) != 1 {
			t.Errorf("%s: %d certificates", tt.name, len(cfg.Certificates))
		}
	}
}

func TestConfigErrors(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	const srvPrefix = "error preparing tls server config: "
	const cliPrefix = "error preparing tls client config: "
	srv := func(mod func(*ServerOptions)) error {
		o := ServerOptions{Name: "srv1", Cert: p.serverCert, Key: p.serverKey}
		mod(&o)
		_, err := NewServerConfig(o, "node1")
		return err
	}
	cli := func(mod func(*ClientOptions)) error {
		o := ClientOptions{Name: "cli1", Cert: p.clientCert, Key: p.clientKey}
		mod(&o)
		_, err := NewClientConfig(o, "node2")
		return err
	}
	tests := []struct {
		name  string
		err   error
		exact string // whole error text, or
		sub   string // a substring, with the prefix checked separately
		pfx   string
	}{
		{"server self-check", srv(func(o *ServerOptions) { o.Cert, o.Key = p.clientCert, p.clientKey }),
			srvPrefix + "nodeID=node1 not found in certificate name(s); names found=[node2]; cfg section=srv1; server cert=" + p.clientCert, "", ""},
		{"server self-check no IDs", srv(func(o *ServerOptions) { o.Cert, o.Key = p.noIDCert, p.noIDKey }),
			srvPrefix + "nodeID=node1 not found in certificate name(s); names found=[]; cfg section=srv1; server cert=" + p.noIDCert, "", ""},
		{"server self-check skipped", srv(func(o *ServerOptions) { o.Cert, o.Key, o.SkipReceptorNamesCheck = p.noIDCert, p.noIDKey, true }), "", "", ""},
		{"client self-check (upstream says server cert)", cli(func(o *ClientOptions) { o.Cert, o.Key = p.serverCert, p.serverKey }),
			cliPrefix + "nodeID=node2 not found in certificate name(s); names found=[node1]; cfg section=cli1; server cert=" + p.serverCert, "", ""},
		{"client self-check skipped", cli(func(o *ClientOptions) { o.Cert, o.Key, o.SkipReceptorNamesCheck = p.serverCert, p.serverKey, true }), "", "", ""},
		{"client without cert", cli(func(o *ClientOptions) { o.Cert, o.Key = "", "" }), "", "", ""},
		{"client cert only", cli(func(o *ClientOptions) { o.Key = "" }), cliPrefix + "cert and key must both be supplied or neither", "", ""},
		{"client key only", cli(func(o *ClientOptions) { o.Cert = "" }), cliPrefix + "cert and key must both be supplied or neither", "", ""},
		{"server bad pin", srv(func(o *ServerOptions) { o.PinnedClientCert = []string{"12:34"} }),
			srvPrefix + "error decoding fingerprints: fingerprints must be 32 or 64 bytes for sha256 or sha512", "", ""},
		{"client bad pin", cli(func(o *ClientOptions) { o.PinnedServerCert = []string{"xx"} }),
			cliPrefix + "error decoding fingerprints: error decoding fingerprint", "", ""},
		{"server missing cert", srv(func(o *ServerOptions) { o.Cert = missing }), "", "no such file or directory", srvPrefix},
		{"server key mismatch", srv(func(o *ServerOptions) { o.Key = p.clientKey }), "", "private key does not match public key", srvPrefix},
		{"server missing client CAs", srv(func(o *ServerOptions) { o.ClientCAs = missing }), "", "error reading client CAs file: open ", srvPrefix},
		{"server empty client CAs", srv(func(o *ServerOptions) { o.ClientCAs = empty }), "", "error reading client CAs file: no PEM certificates", srvPrefix},
		{"client missing root CAs", cli(func(o *ClientOptions) { o.RootCAs = missing }), "", "error reading root CAs file: open ", cliPrefix},
		{"client key is garbage", cli(func(o *ClientOptions) { o.Key = empty }), "", "loading key pair", cliPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errString(tt.err)
			switch {
			case tt.sub != "":
				if !strings.HasPrefix(got, tt.pfx) || !strings.Contains(got, tt.sub) {
					t.Errorf("error %q, want prefix %q and %q", got, tt.pfx, tt.sub)
				}
			case got != tt.exact:
				t.Errorf("error %q\nwant  %q", got, tt.exact)
			}
		})
	}
	var nerr *NodeIDNotInCertError
	if err := srv(func(o *ServerOptions) { o.Cert, o.Key = p.clientCert, p.clientKey }); !errors.As(err, &nerr) || nerr.NodeID != "node1" {
		t.Errorf("self-check error is not a *NodeIDNotInCertError: %v", err)
	}
}

func TestClientConfigFields(t *testing.T) {
	p := getPKI(t)
	c := mustClient(t, ClientOptions{Name: "c", RootCAs: p.caCert, InsecureSkipVerify: true,
		PinnedServerCert: []string{strings.Repeat("00", 32)}}, "n")
	if !c.InsecureSkipVerify || c.VerifyConnection != nil || c.RootCAs == nil {
		t.Errorf("insecure client: skip %v, pin check installed %v", c.InsecureSkipVerify, c.VerifyConnection != nil)
	}
	// ForNode must leave an insecure config alone: no node check, no pins.
	if f := ForNode(c, "x"); f.VerifyConnection != nil || !f.InsecureSkipVerify {
		t.Error("ForNode added verification to an insecureskipverify config")
	}
	if f := ForHost(c, "h"); f.ServerName != "" {
		t.Errorf("ForHost set ServerName %q on an insecure config", f.ServerName)
	}
	secure := mustClient(t, ClientOptions{Name: "c", RootCAs: p.caCert}, "n")
	if f := ForHost(secure, "h.example"); f.ServerName != "h.example" || f.InsecureSkipVerify {
		t.Errorf("ForHost: %q %v", f.ServerName, f.InsecureSkipVerify)
	}
	f := ForNode(secure, "node1")
	if !f.InsecureSkipVerify || f.ServerName != "" || f.VerifyConnection == nil {
		t.Errorf("ForNode: skip %v sni %q check %v", f.InsecureSkipVerify, f.ServerName, f.VerifyConnection != nil)
	}
	if secure.InsecureSkipVerify || secure.VerifyConnection != nil {
		t.Error("ForNode modified its base")
	}
	if ForNode(nil, "x") == nil || ForHost(nil, "x") == nil || ForClientNode(nil, "x") == nil || WithClientNodeCheck(nil) == nil {
		t.Error("nil base gave nil config")
	}
}
