package integration

// receptorctl watch mesh|work and work release --older-than against real
// nodes: the watch verbs follow ControlService.WatchMesh/WatchWork over
// gRPC, fail with the usage code over the control socket, and end with
// exit 0 on SIGINT/SIGTERM; --older-than selects units by the time their
// status last changed (UnitStatus.last_updated).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// ctlWatch is a running receptorctl watch whose stdout and stderr go to a
// file.
type ctlWatch struct {
	t   *testing.T
	p   *testkit.Process
	log string
}

func startWatch(t *testing.T, n *Node, name string, args ...string) *ctlWatch {
	t.Helper()
	log := filepath.Join(n.Dir, "watch-"+name+".out")
	args = append([]string{"--grpc", "unix://" + filepath.Join(n.Dir, "grpc.sock")}, args...)
	p, err := testkit.StartProcess(n.Dir, log, binPath(ctlBin), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return &ctlWatch{t: t, p: p, log: log}
}

func (w *ctlWatch) out() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

// waitFor waits until the output satisfies cond.
func (w *ctlWatch) waitFor(what string, cond func(out string) bool) {
	w.t.Helper()
	testkit.Eventually(w.t, convergeTimeout, what, func() error {
		if exited, err := w.p.Exited(); exited {
			return fmt.Errorf("watch exited (%v):\n%s", err, w.out())
		}
		if out := w.out(); !cond(out) {
			return fmt.Errorf("not yet; output so far:\n%s", truncate(out))
		}
		return nil
	})
}

// stop sends sig and checks that the watch ends with exit 0.
func (w *ctlWatch) stop(sig os.Signal) {
	w.t.Helper()
	if err := w.p.Signal(sig); err != nil {
		w.t.Fatal(err)
	}
	select {
	case <-w.p.Done():
	case <-time.After(commandTimeout):
		w.t.Fatalf("watch did not end after %v", sig)
	}
	if _, err := w.p.Exited(); err != nil {
		w.t.Errorf("watch after %v: %v, want exit 0\n%s", sig, err, w.out())
	}
}

// jsonLines parses the output's lines as JSON objects, failing on any
// other line.
func (w *ctlWatch) jsonLines() []map[string]any {
	w.t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.out()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			w.t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestReceptorctlWatchMesh: watch mesh in text and JSON output prints the
// snapshot, then sees a second node peer in and appear.
func TestReceptorctlWatchMesh(t *testing.T) {
	t.Parallel()
	a := ctlNode(t, workListener)
	text := startWatch(t, a, "text", "watch", "mesh")
	js := startWatch(t, a, "json", "-o", "json", "watch", "mesh")
	text.waitFor("the text snapshot", func(out string) bool { return strings.Contains(out, " SNAPSHOT node=ctlnode") })
	js.waitFor("the JSON snapshot", func(out string) bool { return strings.Contains(out, `"snapshot"`) })

	b := NewNode(t, "watchpeer")
	b.Start(workAllInOneSpec(workPeerOf(a)))
	text.waitFor("NODE_APPEARED watchpeer (text)", func(out string) bool {
		return strings.Contains(out, " NODE_APPEARED node=watchpeer\n")
	})
	text.waitFor("LINK_UP watchpeer (text)", func(out string) bool {
		return strings.Contains(out, " LINK_UP peer=watchpeer backend=tcp-")
	})
	js.waitFor("NODE_APPEARED watchpeer (json)", func(out string) bool { return strings.Contains(out, "NODE_APPEARED") })
	text.stop(syscall.SIGINT)
	js.stop(syscall.SIGTERM)

	lines := js.jsonLines()
	if _, ok := lines[0]["snapshot"]; !ok {
		t.Errorf("first JSON line %v, want the snapshot", lines[0])
	}
	found := false
	for _, m := range lines[1:] {
		e, _ := m["event"].(map[string]any)
		if e == nil {
			t.Errorf("line %v: want an event after the snapshot", m)
			continue
		}
		if e["kind"] == "MESH_EVENT_KIND_NODE_APPEARED" && e["nodeId"] == "watchpeer" {
			found = true
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["time"])); err != nil {
				t.Errorf("event time %v: %v", e["time"], err)
			}
		}
	}
	if !found {
		t.Errorf("no NODE_APPEARED event for watchpeer in\n%s", js.out())
	}
	for _, line := range strings.Split(strings.TrimSpace(text.out()), "\n") {
		if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.Fields(line)[0]); err != nil {
			t.Errorf("text line %q does not start with a time: %v", line, err)
		}
	}
}

// TestReceptorctlWatchWork: watch work sees a unit from CREATED to
// Succeeded (text, JSON and YAML); --snapshot=false leaves the existing units
// out; over the control socket watch fails with the usage code.
func TestReceptorctlWatchWork(t *testing.T) {
	t.Parallel()
	n := ctlNode(t)
	sock := []string{"--socket", n.Socket}
	pre := submitID(t, ctl(t, "", append(sock, "-o", "json", "work", "submit", "cat", "-l", "before", "-f")...))

	text := startWatch(t, n, "text", "watch", "work")
	js := startWatch(t, n, "json", "-o", "json", "watch", "work")
	ym := startWatch(t, n, "yaml", "-o", "yaml", "watch", "work")
	for _, w := range []*ctlWatch{text, js, ym} {
		w.waitFor("the end of the snapshot", func(out string) bool { return strings.Contains(out, "SNAPSHOT_END") })
	}
	if !strings.Contains(text.out(), " SNAPSHOT "+pre+" state=Succeeded worktype=cat") {
		t.Errorf("text snapshot has no line for unit %s:\n%s", pre, text.out())
	}
	// A watch without the snapshot: started now, proven running by a unit
	// it reports (submitted again until one is: its start is not observable
	// otherwise).
	quiet := startWatch(t, n, "quiet", "watch", "work", "--snapshot=false")
	var first string
	testkit.Eventually(t, convergeTimeout, "the --snapshot=false watch reports a new unit", func() error {
		id := submitID(t, ctl(t, "", append(sock, "-o", "json", "work", "submit", "cat", "-l", "probe")...))
		if first == "" {
			first = id
		}
		if !strings.Contains(quiet.out(), " CREATED ") {
			return fmt.Errorf("no CREATED yet:\n%s", quiet.out())
		}
		return nil
	})

	id := submitID(t, ctl(t, "", append(sock, "-o", "json", "work", "submit", "cat", "-l", "hello")...))
	text.waitFor("unit "+id+" CREATED..Succeeded (text)", func(out string) bool {
		return strings.Contains(out, " CREATED "+id+" ") && strings.Contains(out, " CHANGED "+id+" state=Succeeded worktype=cat")
	})
	ym.waitFor("unit "+id+" Succeeded (yaml)", func(out string) bool {
		return strings.Contains(out, "unitId: "+id) && strings.Contains(out, "stateName: Succeeded")
	})
	js.waitFor("unit "+id+" Succeeded (json)", func(out string) bool {
		return strings.Contains(out, `"unitId":"`+id+`"`) && strings.Contains(out, `"stateName":"Succeeded"`)
	})
	quiet.waitFor("unit "+id+" Succeeded (--snapshot=false)", func(out string) bool {
		return strings.Contains(out, " CHANGED "+id+" state=Succeeded")
	})
	for _, w := range []*ctlWatch{text, js, ym, quiet} {
		w.stop(syscall.SIGTERM)
	}

	var kinds []string
	for _, m := range js.jsonLines() {
		if m["unitId"] != id {
			continue
		}
		kinds = append(kinds, fmt.Sprint(m["kind"]))
		st, _ := m["status"].(map[string]any)
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["lastUpdated"])); err != nil {
			t.Errorf("event %v: status.lastUpdated: %v", m, err)
		}
	}
	if len(kinds) < 2 || kinds[0] != "UNIT_EVENT_KIND_CREATED" {
		t.Errorf("events of unit %s: %v, want CREATED first, then CHANGED", id, kinds)
	}
	if out := quiet.out(); strings.Contains(out, "SNAPSHOT") || strings.Contains(out, pre) {
		t.Errorf("--snapshot=false printed the snapshot:\n%s", out)
	}
	if !strings.HasPrefix(ym.out(), "---\n") {
		t.Errorf("YAML output does not start with a document separator:\n%s", truncate(ym.out()))
	}

	for _, verb := range []string{"mesh", "work"} {
		r := ctl(t, "", append(sock, "watch", verb)...)
		if r.Code != 64 || !strings.Contains(r.Err, "--grpc") {
			t.Errorf("watch %s over the socket: %s, want exit 64 naming --grpc", verb, r)
		}
	}
}

// submitID is the unit ID of a `-o json work submit` run.
func submitID(t *testing.T, r ctlResult) string {
	t.Helper()
	var s map[string]string
	if err := json.Unmarshal([]byte(strings.SplitN(r.Out, "\n{", 2)[0]), &s); err != nil || s["unitid"] == "" {
		t.Fatalf("submit: %v %s", err, r)
	}
	return s["unitid"]
}

// TestReceptorctlReleaseOlderThan: --older-than releases the units whose
// status last changed before the cutoff, ANDed with the state selection;
// over the control socket it is refused with the usage code.
func TestReceptorctlReleaseOlderThan(t *testing.T) {
	t.Parallel()
	n := ctlNode(t)
	sock := []string{"--socket", n.Socket}
	grpcAddr := []string{"--grpc", "unix://" + filepath.Join(n.Dir, "grpc.sock")}
	old := submitID(t, ctl(t, "", append(sock, "-o", "json", "work", "submit", "cat", "-l", "old", "-f")...))
	// The old unit finished at least 4 s before the release below, the new
	// one just before it; the cutoff (3 s) lies between the two.
	time.Sleep(4 * time.Second)
	young := submitID(t, ctl(t, "", append(sock, "-o", "json", "work", "submit", "cat", "-l", "young", "-f")...))

	if r := ctl(t, "", append(sock, "work", "release", "--older-than", "3s")...); r.Code != 64 || !strings.Contains(r.Err, "--grpc") {
		t.Errorf("release --older-than over the socket: %s, want exit 64 naming --grpc", r)
	}
	if r := ctl(t, "", append(grpcAddr, "work", "release", "--older-than", "3s", "--failed")...); r.Code != 0 || strings.Contains(r.Out, "released") {
		t.Errorf("release --older-than 3s --failed: %s, want nothing released (no unit failed)", r)
	}
	r := ctl(t, "", append(grpcAddr, "-o", "json", "work", "release", "--older-than", "3s", "--succeeded")...)
	if r.Code != 0 || strings.TrimSpace(r.Out) != `{"released":"`+old+`"}` {
		t.Errorf("release --older-than 3s --succeeded: %s, want only %s released", r, old)
	}
	left := ctl(t, "", append(sock, "work", "list", "-q")...)
	if strings.Fields(left.Out) == nil || strings.TrimSpace(left.Out) != young {
		t.Errorf("units left: %s, want only %s", left, young)
	}
}
