package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// Failure bounds (never timing assertions).
const (
	startTimeout   = 60 * time.Second
	commandTimeout = 30 * time.Second
)

// imageUID is the image's user (deploy/container/Containerfile USER).
const imageUID = 1000

// TestImage builds the image as `make image` does and runs it as a user
// would: with the default configuration, and with a configuration mounted
// at /etc/receptor/receptor.conf; receptorctl's protocol reaches the node
// through the mounted socket directory, a node on the host peers into the
// container through the published mesh port, and a unit of work runs in
// the container (receptor-runner beside receptor, the datadir volume).
func TestImage(t *testing.T) {
	p := newPodmanStore(t)
	image := p.buildImage()

	t.Run("config", func(t *testing.T) {
		var cfg struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			Volumes      map[string]any
			ExposedPorts map[string]any
			WorkingDir   string
		}
		if err := json.Unmarshal([]byte(p.must("image", "inspect", "--format", "{{json .Config}}", image)), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.User != "1000:1000" {
			t.Errorf("User %q, want 1000:1000 (non-root)", cfg.User)
		}
		if !slices.Equal(cfg.Entrypoint, []string{"/usr/bin/receptor"}) {
			t.Errorf("Entrypoint %q", cfg.Entrypoint)
		}
		if !slices.Equal(cfg.Cmd, []string{"-c", "/etc/receptor/receptor.conf"}) {
			t.Errorf("Cmd %q", cfg.Cmd)
		}
		if _, ok := cfg.Volumes["/var/lib/receptor"]; !ok {
			t.Errorf("Volumes %v: no /var/lib/receptor", cfg.Volumes)
		}
		if _, ok := cfg.ExposedPorts["7323/tcp"]; !ok {
			t.Errorf("ExposedPorts %v: no 7323/tcp", cfg.ExposedPorts)
		}
	})

	// Both containers run at once; each subtest stops its own.
	t.Run("default config", func(t *testing.T) {
		t.Parallel()
		run := socketDir(t)
		name := "receptor-default"
		p.must("run", "-d", "--name", name, "-v", run+":/run/receptor:Z", image)
		conn := waitControl(t, p, name, filepath.Join(run, "receptor.sock"))
		// Upstream's rule: no node id means the host name.
		if host := p.must("inspect", "--format", "{{.Config.Hostname}}", name); conn.NodeID() != host {
			t.Errorf("node ID %q, want the container's host name %q", conn.NodeID(), host)
		}
		status := controlStatus(t, conn)
		if status.NodeID != conn.NodeID() {
			t.Errorf("status NodeID %q, greeting %q", status.NodeID, conn.NodeID())
		}
		stopContainer(t, p, name)
	})

	t.Run("mounted config", func(t *testing.T) {
		t.Parallel()
		dir := testkit.ShortTempDir(t)
		run := socketDir(t)
		port := testkit.FreePort(t)
		conf := filepath.Join(dir, "receptor.conf")
		writeFile(t, conf, 0o644, "---\n"+
			testkit.Entity("node", "id", "image-node", "datadir", "/var/lib/receptor")+
			testkit.Entity("control-service", "service", "control", "filename", "/run/receptor/receptor.sock")+
			testkit.Entity("tcp-listener", "port", "7323")+
			testkit.Entity("grpc-server", "filename", "/run/receptor/grpc.sock")+
			// The image has no shell: the one command at hand is receptor.
			testkit.Entity("work-command", "worktype", "version", "command", "receptor", "params", "--version"))
		name := "receptor-mounted"
		// The user's command line of the issue, plus the socket directory
		// and the published mesh port.
		p.must("run", "-d", "--name", name,
			"-v", conf+":/etc/receptor/receptor.conf:Z",
			"-v", run+":/run/receptor:Z",
			"-p", fmt.Sprintf("127.0.0.1:%d:7323", port), image)
		sock := filepath.Join(run, "receptor.sock")
		conn := waitControl(t, p, name, sock)
		if conn.NodeID() != "image-node" {
			t.Fatalf("node ID %q, want image-node from the mounted file", conn.NodeID())
		}

		// A node on the host joins through the published port.
		hostSock := filepath.Join(dir, "host.sock")
		log := filepath.Join(dir, "host.log")
		host, err := testkit.StartProcess(dir, log, filepath.Join(binDir, "receptor"),
			"--node", "id=host-node", "datadir="+filepath.Join(dir, "data"),
			"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port),
			"--control-service", "filename="+hostSock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := host.Stop(20 * time.Second); err != nil {
				t.Errorf("host node: %v\n%s", err, testkit.LogTail(log, 4096))
			}
		})
		testkit.Eventually(t, startTimeout, "the container's node lists host-node", func() error {
			c, err := dialControl(sock)
			if err != nil {
				return err
			}
			defer c.Close()
			s := controlStatus(t, c)
			if _, ok := s.RoutingTable["host-node"]; !ok {
				return fmt.Errorf("routing table %v", s.RoutingTable)
			}
			return nil
		})

		// A unit of work in the container: the work agent writes to the
		// datadir volume as uid 1000 and starts receptor-runner.
		want, err := exec.Command(filepath.Join(binDir, "receptor"), "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		got := runVersionUnit(t, sock)
		if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Errorf("unit results %q, want %q", got, want)
		}
		// The Kubernetes manifests' exec probe, run in the container.
		if out, err := p.run("exec", name, "receptor-probe", "unix:///run/receptor/grpc.sock"); err != nil {
			t.Errorf("receptor-probe in the container: %v\n%s", err, out)
		}
		if out, err := p.run("exec", name, "receptor-probe", "unix:///run/receptor/none.sock"); err == nil {
			t.Errorf("receptor-probe of a missing socket succeeded: %s", out)
		}
		// The image's own receptorctl reaches the node from inside.
		if out, err := p.run("exec", name, "receptorctl", "--socket", "/run/receptor/receptor.sock", "-o", "json", "status"); err != nil || !strings.Contains(out, `"NodeID"`) {
			t.Errorf("receptorctl status in the container: %v\n%s", err, out)
		}
		stopContainer(t, p, name)
	})
}

// socketDir is a host directory to mount at /run/receptor, owned by the
// image's user and writable by it alone (the node refuses a socket
// directory others may write).
func socketDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testkit.ShortTempDir(t), "run")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, imageUID, imageUID); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, mode os.FileMode, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func dialControl(sock string) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return client.Dial(ctx, sock, nil)
}

// waitControl waits for the container's control socket to answer and
// returns a session on it, closed when the test ends.
func waitControl(t *testing.T, p *podmanStore, name, sock string) *client.Conn {
	t.Helper()
	var conn *client.Conn
	testkit.Eventually(t, startTimeout, "control socket "+sock, func() error {
		if state, err := p.run("inspect", "--format", "{{.State.Status}}", name); err != nil || strings.TrimSpace(state) != "running" {
			t.Fatalf("container %s is %q (%v); logs:\n%s", name, strings.TrimSpace(state), err, p.logs(name))
		}
		c, err := dialControl(sock)
		if err != nil {
			return err
		}
		conn = c
		return nil
	})
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// statusReply is the part of a control `status` reply the tests read.
type statusReply struct {
	NodeID       string
	RoutingTable map[string]string
}

func controlStatus(t *testing.T, c *client.Conn) statusReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var s statusReply
	if err := c.CommandJSON(ctx, map[string]string{"command": "status"}, &s); err != nil {
		t.Fatalf("status: %v", err)
	}
	return s
}

// runVersionUnit submits a `version` unit on the node at sock and returns
// its results.
func runVersionUnit(t *testing.T, sock string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := client.Dial(ctx, sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SubmitWork(ctx, map[string]string{"node": "image-node", "worktype": "version"}, nil)
	_ = c.Close()
	if err != nil {
		t.Fatalf("work submit: %v", err)
	}
	c, err = client.Dial(ctx, sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Results(ctx, res.UnitID, 0)
	if err != nil {
		t.Fatalf("work results %s: %v", res.UnitID, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("work results %s: %v after %q", res.UnitID, err, b)
	}
	return string(b)
}

// stopContainer stops a container as `podman stop` does (SIGTERM) and
// checks that the node exited cleanly (status 0, not killed after the
// grace period).
func stopContainer(t *testing.T, p *podmanStore, name string) {
	t.Helper()
	p.must("stop", "--time", "20", name)
	code := p.must("inspect", "--format", "{{.State.ExitCode}}", name)
	if n, err := strconv.Atoi(code); err != nil || n != 0 {
		t.Errorf("container %s exited with %q after SIGTERM; logs:\n%s", name, code, p.logs(name))
	}
}
