package router

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control/client"
)

// reloadNode is a router started from a v1 configuration file, with
// reload re-reading that file.
type reloadNode struct {
	*node
	path string
}

// reloadConfig is the configuration of a reload test: the node's sockets
// and the given extra entities (YAML list items).
func reloadConfig(n *node, extra string) string {
	return fmt.Sprintf(`---
- node:
    id: %s
    datadir: %s
- control-service:
    filename: %s
- grpc-server:
    filename: %s
%s`, n.id, filepath.Join(n.dir, "data"), n.ctlSock, n.apiSock, extra)
}

func tcpListenerYAML(port int) string {
	return fmt.Sprintf("- tcp-listener:\n    port: %d\n    bindaddr: 127.0.0.1\n", port)
}

func startReloadNode(t *testing.T, id, extra string) *reloadNode {
	t.Helper()
	n := &node{id: id, dir: shortDir(t)}
	n.ctlSock = filepath.Join(n.dir, "ctl.sock")
	n.apiSock = filepath.Join(n.dir, "api.sock")
	path := filepath.Join(n.dir, "receptor.conf")
	writeFile(t, path, reloadConfig(n, extra))
	cfg, err := config.ParseArgs([]string{"-c", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, Options{
		Logger: testLogger(t),
		Reload: &config.Reloader{Load: func() (*config.Config, error) { return config.ParseArgs([]string{"-c", path}, nil) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	n.stop = runRouter(t, r)
	connect(t, n)
	return &reloadNode{node: n, path: path}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func canDial(port int) error {
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return c.Close()
}

// reloadCode returns the errorcode of a ReloadFailed status.
func reloadCode(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetMetadata()["errorcode"]
		}
	}
	return ""
}

func TestReload(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	n := startReloadNode(t, "a", tcpListenerYAML(p1))
	ctx := testCtx(t)
	if err := canDial(p1); err != nil {
		t.Fatalf("listener %d: %v", p1, err)
	}

	// A backend change is applied: the listener moves from p1 to p2, and
	// a peer connects to the new one.
	writeFile(t, n.path, reloadConfig(n.node, tcpListenerYAML(p2)))
	if _, err := n.control.Reload(ctx, &controlv1.ReloadRequest{}); err != nil {
		t.Fatalf("Reload with a new listener: %v", err)
	}
	if err := canDial(p2); err != nil {
		t.Errorf("new listener %d after reload: %v", p2, err)
	}
	if err := canDial(p1); err == nil {
		t.Errorf("old listener %d still accepts after reload", p1)
	}
	startNode(t, nodeSpec{id: "b", peers: []int{p2}})
	waitRoutes(t, n.node, "b")

	// Concurrent reloads of the same file all succeed: each replaces the
	// backends as a whole, so none finds the port taken by another.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := n.control.Reload(ctx, &controlv1.ReloadRequest{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent reload: %v", err)
	}
	waitRoutes(t, n.node, "b")

	// A non-reloadable entity added: ERRORCODE 3, nothing changes.
	writeFile(t, n.path, reloadConfig(n.node, tcpListenerYAML(p2)+"- control-service:\n    service: other\n"))
	_, err := n.control.Reload(ctx, &controlv1.ReloadRequest{})
	wantMsg := "a non-reloadable config action 'control-service' was modified or added. Must restart receptor for these changes to take effect ERRORCODE 3"
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != wantMsg || reloadCode(err) != "3" {
		t.Errorf("reload with a control-service added: %v (errorcode %q)", err, reloadCode(err))
	}
	// A non-reloadable entity removed.
	writeFile(t, n.path, fmt.Sprintf("---\n- node:\n    id: a\n    datadir: %s\n- grpc-server:\n    filename: %s\n%s",
		filepath.Join(n.dir, "data"), n.apiSock, tcpListenerYAML(p2)))
	_, err = n.control.Reload(ctx, &controlv1.ReloadRequest{})
	wantMsg = "a non-reloadable config action 'control-service' was removed. Must restart receptor for changes to take effect ERRORCODE 3"
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != wantMsg {
		t.Errorf("reload with the control-service removed: %v", err)
	}

	// The file is gone: ERRORCODE 4, and the backends keep running.
	if err := os.Remove(n.path); err != nil {
		t.Fatal(err)
	}
	_, err = n.control.Reload(ctx, &controlv1.ReloadRequest{})
	if status.Code(err) != codes.FailedPrecondition || reloadCode(err) != "4" {
		t.Errorf("reload without a file: %v (errorcode %q)", err, reloadCode(err))
	}
	if err := canDial(p2); err != nil {
		t.Errorf("listener after failed reloads: %v", err)
	}

	// The receptorctl protocol reports the same failure as JSON.
	cc, err := client.Dial(ctx, n.ctlSock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var rep struct {
		Success bool
		Error   string
	}
	if err := cc.CommandJSON(ctx, map[string]string{"command": "reload"}, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Success || len(rep.Error) < len(" ERRORCODE 4") || rep.Error[len(rep.Error)-len(" ERRORCODE 4"):] != " ERRORCODE 4" {
		t.Errorf("receptorctl reload = %+v", rep)
	}
}

// TestReloadWithoutFile checks the error of a router started without a
// configuration file.
func TestReloadWithoutFile(t *testing.T) {
	n := startNode(t, nodeSpec{id: "a"})
	ctx := testCtx(t)
	_, err := n.control.Reload(ctx, &controlv1.ReloadRequest{})
	want := "no configuration file was provided, reload function not set ERRORCODE 4"
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != want || reloadCode(err) != "4" {
		t.Errorf("Reload = %v, want FailedPrecondition %q", err, want)
	}
}

// TestRunFromConfigNilLogger checks that a nil logger means slog.Default()
// (it used to panic on the first log line).
func TestRunFromConfigNilLogger(t *testing.T) {
	cfg, err := config.ParseArgs([]string{"--node", "id=a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = RunFromConfig(testCtx(t), cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no backends configured") {
		t.Errorf("RunFromConfig without backends = %v", err)
	}
}

// TestCompareNonReloadable checks that entities are compared as sets: the
// same entities in another order are no change; an addition, a change and
// a removal are reported with upstream's texts.
func TestCompareNonReloadable(t *testing.T) {
	load := func(args ...string) *config.Config {
		t.Helper()
		cfg, err := config.ParseArgs(append([]string{"--node", "id=a"}, args...), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := load("--work-command", "worktype=a", "command=echo", "--work-command", "worktype=b", "command=cat",
		"--tcp-listener", "port=1")
	for _, tc := range []struct {
		name string
		cfg  *config.Config
		want string
	}{
		{"reordered, backend changed", load("--tcp-listener", "port=2", "--work-command", "worktype=b", "command=cat",
			"--work-command", "worktype=a", "command=echo"), ""},
		{"added", load("--work-command", "worktype=a", "command=echo", "--work-command", "worktype=b", "command=cat",
			"--work-command", "worktype=b", "command=cat"), "a non-reloadable config action 'work-command' was modified or added"},
		{"changed", load("--work-command", "worktype=a", "command=echo", "--work-command", "worktype=b", "command=tac"),
			"a non-reloadable config action 'work-command' was modified or added"},
		{"removed", load("--work-command", "worktype=b", "command=cat"), "a non-reloadable config action 'work-command' was removed"},
	} {
		err := compareNonReloadable(base, tc.cfg)
		if (tc.want == "") != (err == nil) || err != nil && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
