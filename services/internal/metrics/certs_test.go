package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCertExpiry: each configured certificate reports the seconds to its
// NotAfter, read when scraped (a renewed file shows at the next scrape);
// an unreadable file has no series.
func TestCertExpiry(t *testing.T) {
	now := time.Unix(1800000000, 0)
	srv := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: "srv", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)})
	cli := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: "cli", NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	cfg := &config.Config{
		TLSServers: []config.TLSServer{{Name: "mesh-tls", Cert: srv.CertFile}},
		TLSClients: []config.TLSClient{{Name: "client-tls", Cert: cli.CertFile}, {Name: "nocert"},
			{Name: "gone", Cert: filepath.Join(t.TempDir(), "missing.crt")}},
	}
	c := certCollector{certs: CertsOf(cfg), now: func() time.Time { return now }}
	want := `
# HELP receptor_tls_certificate_expiry_seconds Seconds until the configured certificate expires (negative once expired), read from its file when scraped; absent while the file cannot be read.
# TYPE receptor_tls_certificate_expiry_seconds gauge
receptor_tls_certificate_expiry_seconds{entity="tls-client",name="client-tls"} -3600
receptor_tls_certificate_expiry_seconds{entity="tls-server",name="mesh-tls"} 864000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// Renewed on disk: the next scrape reads the new file.
	renewed := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: "cli", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)})
	b, err := os.ReadFile(renewed.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cli.CertFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, "} -3600", "} 2.592e+06", 1)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
