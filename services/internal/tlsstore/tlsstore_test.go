package tlsstore

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writePair writes a self-signed certificate and its key as PEM files.
func writePair(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	c := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: "test"})
	return c.CertFile, c.KeyFile
}

func load(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.LoadV1("test", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestFromConfig checks that each entity's parameters reach its TLS config.
func TestFromConfig(t *testing.T) {
	cert, key := writePair(t)
	cfg := load(t, fmt.Sprintf(`---
- node:
    id: a
- tls-server:
    name: strict
    cert: %[1]s
    key: %[2]s
    requireclientcert: true
    clientcas: %[1]s
    mintls13: true
    skipreceptornamescheck: true
- tls-server:
    name: plain
    cert: %[1]s
    key: %[2]s
    skipreceptornamescheck: true
- tls-client:
    name: skip
    cert: ""
    key: ""
    insecureskipverify: true
- tls-client:
    name: mine
    cert: %[1]s
    key: %[2]s
    rootcas: %[1]s
    skipreceptornamescheck: true
`, cert, key))
	store, err := FromConfig(cfg, nil)
	if err != nil {
		t.Fatalf("FromConfig: %v", err)
	}
	servers := []struct {
		name       string
		clientAuth tls.ClientAuthType
		minVersion uint16
		clientCAs  bool
	}{
		{"strict", tls.RequireAndVerifyClientCert, tls.VersionTLS13, true},
		{"plain", tls.NoClientCert, tls.VersionTLS12, false},
	}
	for _, tt := range servers {
		got, err := store.Server(tt.name)
		if err != nil {
			t.Fatalf("Server(%q): %v", tt.name, err)
		}
		if got.ClientAuth != tt.clientAuth || got.MinVersion != tt.minVersion || (got.ClientCAs != nil) != tt.clientCAs || len(got.Certificates) != 1 {
			t.Errorf("Server(%q): ClientAuth %v MinVersion %#x ClientCAs %v certificates %d; want %v %#x %v 1",
				tt.name, got.ClientAuth, got.MinVersion, got.ClientCAs != nil, len(got.Certificates), tt.clientAuth, tt.minVersion, tt.clientCAs)
		}
	}
	clients := []struct {
		name    string
		skip    bool
		rootCAs bool
		certs   int
	}{
		{"skip", true, false, 0},
		{"mine", false, true, 1},
	}
	for _, tt := range clients {
		got, err := store.Client(tt.name)
		if err != nil {
			t.Fatalf("Client(%q): %v", tt.name, err)
		}
		// The client certificate comes from GetClientCertificate: the one
		// current at each handshake (tlsconf.Store.Reload).
		certs := 0
		if got.GetClientCertificate != nil {
			if c, err := got.GetClientCertificate(&tls.CertificateRequestInfo{}); err == nil && c != nil {
				certs = 1
			}
		}
		if got.InsecureSkipVerify != tt.skip || (got.RootCAs != nil) != tt.rootCAs || certs != tt.certs {
			t.Errorf("Client(%q): InsecureSkipVerify %v RootCAs %v certificates %d; want %v %v %d",
				tt.name, got.InsecureSkipVerify, got.RootCAs != nil, certs, tt.skip, tt.rootCAs, tt.certs)
		}
	}
	if _, err := store.Server("nosuch"); err == nil {
		t.Error("Server(nosuch) succeeded")
	}
}

// TestFromConfigNodeIDCheck checks that the node ID reaches the store: a
// certificate without it fails unless the check is skipped.
func TestFromConfigNodeIDCheck(t *testing.T) {
	cert, key := writePair(t)
	cfg := load(t, fmt.Sprintf("---\n- node:\n    id: a\n- tls-server:\n    name: s\n    cert: %s\n    key: %s\n", cert, key))
	_, err := FromConfig(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "nodeID=a not found") {
		t.Errorf("FromConfig with a certificate lacking the node ID = %v, want an error", err)
	}
}
