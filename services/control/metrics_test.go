package control

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// TestSessionAndRequestMetrics: a unix session of a reader counts one
// session on the unix face, and its requests by command and outcome: a
// status (ok), a failed ping (error), a reload (denied: admin only) and a
// line that does not parse (invalid, error).
func TestSessionAndRequestMetrics(t *testing.T) {
	policy, err := authz.New(authz.Options{Rules: []authz.Rule{{Role: authz.RoleReader, Principals: []string{"uid:*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Options{Policy: policy}, OriginUnix)
	c := dialRaw(t, ts.path)
	c.send("status\nping nowhere\nreload\nfrobnicate\n")
	_ = c.conn.CloseWrite()
	c.readAll()
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP receptor_control_sessions_open Control-protocol sessions open now, by face.
# TYPE receptor_control_sessions_open gauge
receptor_control_sessions_open{face="mesh"} 0
receptor_control_sessions_open{face="tcp"} 0
receptor_control_sessions_open{face="unix"} 0
# HELP receptor_control_sessions_total Control-protocol sessions started, by face (unix, tcp, mesh).
# TYPE receptor_control_sessions_total counter
receptor_control_sessions_total{face="mesh"} 0
receptor_control_sessions_total{face="tcp"} 0
receptor_control_sessions_total{face="unix"} 1
`
	if err := testutil.CollectAndCompare(ts.srv.Collector(), strings.NewReader(want),
		"receptor_control_sessions_total", "receptor_control_sessions_open"); err != nil {
		t.Error(err)
	}
	st := ts.srv.stats
	for _, c := range []struct {
		cmd, outcome int
		want         uint64
	}{
		{cmdStatus, outcomeOK, 1}, {cmdPing, outcomeError, 1}, {cmdPing, outcomeOK, 0},
		{cmdReload, outcomeDenied, 1}, {cmdReload, outcomeOK, 0}, {cmdInvalid, outcomeError, 1},
	} {
		if got := st.requests[c.cmd][c.outcome].Load(); got != c.want {
			t.Errorf("requests{command=%q,outcome=%q} = %d, want %d", commandNames[c.cmd], outcomeNames[c.outcome], got, c.want)
		}
	}
	if n := testutil.CollectAndCount(ts.srv.Collector(), "receptor_control_requests_total"); n != numCommands*numOutcomes {
		t.Errorf("%d request series, want %d", n, numCommands*numOutcomes)
	}
	if problems, err := testutil.CollectAndLint(ts.srv.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
