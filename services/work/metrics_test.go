package work

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/signing"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// TestLifecycleMetrics runs units through the agent and checks the
// lifecycle figures: a unit seen Running then Succeeded counts one
// completion and one observation of each duration, a failing unit counts
// as Failed, output read counts results bytes, and an expired token counts
// a signature failure with its clock skew.
func TestLifecycleMetrics(t *testing.T) {
	v := newEnv(t)
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := filepath.Join(t.TempDir(), "verify.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := signing.NewVerifier(pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := v.agent(t, func(o *Options) { o.Verifier = verifier })
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collector())

	id := submit(t, a, "gated", nil, "")
	waitState(t, a, id, func(r unit.Report) bool { return r.State == unit.Running })
	if err := os.WriteFile(v.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := results(t, a, id, 0); string(out) != "started\nfinished\n" {
		t.Fatalf("results %q", out)
	}
	failed := submit(t, a, "fail3", nil, "")
	waitState(t, a, failed, func(r unit.Report) bool { return r.State.Complete() })

	expired, err := jwt.NewWithClaims(jwt.SigningMethodRS512, jwt.RegisteredClaims{
		Audience: jwt.ClaimStrings{"nodea"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(-2 * time.Hour)),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Submit(context.Background(), SubmitRequest{Node: "nodea", WorkType: "secure", Auth: Auth{Signature: expired}}, strings.NewReader("x"))
	if err == nil {
		t.Fatal("an expired token was accepted")
	}

	testkit.Eventually(t, 20*time.Second, "lifecycle figures", func() error {
		for _, c := range []struct {
			name string
			got  float64
			want float64
		}{
			{"gated Succeeded", testutil.ToFloat64(a.m.completed.WithLabelValues("gated", "Succeeded")), 1},
			{"fail3 Failed", testutil.ToFloat64(a.m.completed.WithLabelValues("fail3", "Failed")), 1},
			{"fail3 Succeeded", testutil.ToFloat64(a.m.completed.WithLabelValues("fail3", "Succeeded")), 0},
			{"gated results bytes", testutil.ToFloat64(a.m.resultsBytes.WithLabelValues("gated")), float64(len("started\nfinished\n"))},
			{"expired signatures", testutil.ToFloat64(a.m.sigFailures.WithLabelValues("expired")), 1},
		} {
			if c.got != c.want {
				return fmt.Errorf("%s: %v, want %v", c.name, c.got, c.want)
			}
		}
		return nil
	})
	body := gatherText(t, reg)
	for _, want := range []string{
		`receptor_work_unit_start_duration_seconds_count{work_type="gated"} 1`,
		`receptor_work_unit_run_duration_seconds_count{work_type="gated"} 1`,
		`receptor_work_signature_clock_skew_seconds_count{reason="expired"} 1`,
		// 2 h late: above the 3600 bucket, within 21600.
		`receptor_work_signature_clock_skew_seconds_bucket{reason="expired",le="3600"} 0`,
		`receptor_work_signature_clock_skew_seconds_bucket{reason="expired",le="21600"} 1`,
		`receptor_work_submissions_total{outcome="refused"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("exposition lacks %s", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestRecoveredUnitsNotCountedAgain: units already ended when an agent
// starts on their directory do not count as completed again.
func TestRecoveredUnitsNotCountedAgain(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	id := submit(t, a, "fail3", nil, "")
	waitState(t, a, id, func(r unit.Report) bool { return r.State.Complete() })
	a.Close()
	b := v.agent(t)
	if _, err := b.Status(id); err != nil {
		t.Fatal(err)
	}
	// Give the observer the chance to (wrongly) count it.
	time.Sleep(200 * time.Millisecond)
	if n := testutil.ToFloat64(b.m.completed.WithLabelValues("fail3", "Failed")); n != 0 {
		t.Errorf("recovered Failed unit counted %v times", n)
	}
}

func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
