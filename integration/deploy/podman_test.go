package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// podmanTimeout bounds one podman or build command (a failure bound: an
// image build takes seconds, but a loaded CI machine copies 80 MB slowly).
const podmanTimeout = 5 * time.Minute

// repoRoot is the repository's top directory (this file is in
// integration/deploy).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// podmanStore is podman with a store of its own under a temporary
// directory (CONTAINERS_STORAGE_CONF), runc and explicit ulimits
// (CONTAINERS_CONF; see the machine notes in README's testing section):
// tests share nothing with the machine's images and containers. Its
// cleanup removes the containers, images and the store.
type podmanStore struct {
	t   *testing.T
	env []string
}

// needPodman skips the test when podman is missing, unless
// RECEPTOR_REQUIRE_PODMAN=1 (CI installs it and sets that), and when not
// root: the test chowns directories to the image's user and runs rootful
// podman.
func needPodman(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("RECEPTOR_REQUIRE_PODMAN") == "1" {
			t.Fatalf("podman is not installed and RECEPTOR_REQUIRE_PODMAN=1: %v", err)
		}
		t.Skip("podman is not installed (apt-get install podman runc; CI sets RECEPTOR_REQUIRE_PODMAN=1)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("RECEPTOR_REQUIRE_PODMAN") == "1" {
			t.Fatal("RECEPTOR_REQUIRE_PODMAN=1 but not root: the image test runs rootful podman")
		}
		t.Skip("the image test runs rootful podman and chowns directories to uid 1000: run it as root")
	}
}

func newPodmanStore(t *testing.T) *podmanStore {
	t.Helper()
	needPodman(t)
	dir := testkit.ShortTempDir(t)
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "runroot"))
	// crun fails on this kind of machine (cgroups hybrid mode) and the
	// default ulimits cannot be set: runc and explicit limits work.
	containers := "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n" +
		"[engine]\nruntime = \"runc\"\n"
	for name, body := range map[string]string{"storage.conf": storage, "containers.conf": containers} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &podmanStore{t: t, env: append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"))}
	// Registered after ShortTempDir's cleanup, so it runs first: the
	// store's overlay mounts go before its directory is removed.
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"volume", "rm", "--all", "--force"}, {"rmi", "--all", "--force"}} {
			if out, err := p.run(args...); err != nil {
				t.Logf("cleanup: podman %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	return p
}

// run runs podman with args in the test's store and returns its standard
// output (standard error is appended on failure).
func (p *podmanStore) run(args ...string) (string, error) {
	return p.command("podman", args...)
}

// command runs name (podman, a script that calls podman) with the store's
// environment.
func (p *podmanStore) command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), podmanTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// must is run that fails the test on error.
func (p *podmanStore) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// buildImage runs scripts/image.sh (what `make image` runs) on binDir into
// the store and returns the image's name.
func (p *podmanStore) buildImage() string {
	p.t.Helper()
	const image = "localhost/receptor:test"
	start := time.Now()
	p.env = append(p.env, "BIN="+binDir, "IMAGE="+image, "VERSION=test")
	out, err := p.command(filepath.Join(repoRoot(p.t), "scripts", "image.sh"))
	if err != nil {
		p.t.Fatalf("make image: %v\n%s", err, out)
	}
	p.t.Logf("image built in %v", time.Since(start).Round(time.Millisecond))
	return image
}

// logs is a container's output, for failure messages.
func (p *podmanStore) logs(name string) string {
	out, err := p.run("logs", name)
	if err != nil {
		return fmt.Sprintf("(podman logs %s: %v %s)", name, err, out)
	}
	return out
}
