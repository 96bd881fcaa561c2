package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// noWorkAgent is the reply of receptor-router to work requests when no
// work agent is attached.
const noWorkAgent = "ERROR: no work agent is attached to this router; work commands need a running receptor-worker (work-agent entity)"

// TestWorkWithoutAgent: a router alone answers work requests with a clear
// error line (after the same request parsing as upstream) and keeps
// serving everything else.
func TestWorkWithoutAgent(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	n.Start(Spec{Args: func(n *Node) []string { return nodeArgs(n, "--local-only") }})
	runExchanges(t, n, []exchange{
		{"work list\n", []string{noWorkAgent}},
		{"work status abcd1234\n", []string{noWorkAgent}},
		{"work release abcd1234\n", []string{noWorkAgent}},
		{"work results abcd1234 0\n", []string{noWorkAgent}},
		{`{"command":"work","subcommand":"list"}` + "\n", []string{noWorkAgent}},
		// Parse errors come first, exactly as upstream words them.
		{"work\n", []string{"ERROR: bad command"}},
		{"work bogus\n", []string{"ERROR: bad command"}},
		{"work submit nodea\n", []string{"ERROR: work submit requires a target node and work type"}},
		{"work status\n", []string{"ERROR: work status requires a unit ID"}},
		{"work status a b\n", []string{"ERROR: work status does not take parameters after the unit ID"}},
		{"work results x y\n", []string{`ERROR: error converting start position to integer: strconv.ParseInt: parsing "y": invalid syntax`}},
		{`{"command":"work"}` + "\n", []string{"ERROR: field subcommand missing"}},
		{`{"command":"work","subcommand":"results","unitid":"x","startpos":"6"}` + "\n",
			[]string{"ERROR: field startpos value 6 is not convertible to an int"}},
	})
	// A submit is refused before the raw payload phase: no "Work unit
	// created" line, and the session goes on.
	runExchanges(t, n, []exchange{
		{"work submit localhost echo\n", []string{noWorkAgent}},
		{`{"command":"work","subcommand":"submit","node":"localhost","worktype":"echo"}` + "\n", []string{noWorkAgent}},
	})
	checkPing(t, n, "localhost")
}

// TestWorkAgentUnreachable: with a work-agent entity whose agent is not
// running, the router starts, work requests fail with one ERROR line, and
// everything else works.
func TestWorkAgentUnreachable(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	n.Start(Spec{Args: func(n *Node) []string {
		return nodeArgs(n, "--local-only", "--work-agent", "address=unix://"+filepath.Join(n.Dir, "no-agent.sock"))
	}})
	rc := n.Raw()
	defer rc.Close()
	for _, cmd := range []string{"work list\n", "work submit localhost echo\n"} {
		rc.Send(cmd)
		if got := rc.Line(); !strings.HasPrefix(got, "ERROR: ") || !strings.Contains(got, "no-agent.sock") {
			t.Errorf("%q with an unreachable work agent: got %q, want an ERROR line naming the agent's address", cmd, got)
		}
	}
	stillServes(t, n)
}
