package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// composeFile is the part of a compose file the test reads.
type composeFile struct {
	Services map[string]struct {
		Image      string   `yaml:"image"`
		Entrypoint []string `yaml:"entrypoint"`
		Command    []string `yaml:"command"`
		Volumes    []string `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// loadCompose parses dir/compose.yaml.
func loadCompose(t *testing.T, dir string) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("parsing %s/compose.yaml: %v", dir, err)
	}
	return c
}

// binds splits a service's volumes into host files (relative binds, by
// container path) and named volumes (by container path).
func binds(t *testing.T, c composeFile, service string) (files, named map[string]string) {
	t.Helper()
	files, named = map[string]string{}, map[string]string{}
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("%s: volume %q", service, v)
		}
		if strings.HasPrefix(parts[0], "./") {
			files[parts[1]] = parts[0]
		} else {
			if _, ok := c.Volumes[parts[0]]; !ok {
				t.Errorf("%s: named volume %q is not declared", service, parts[0])
			}
			named[parts[1]] = parts[0]
		}
	}
	return files, named
}

// TestComposeSplit: router and worker run the image's programs on their
// files, share the socket volume that holds the gRPC sockets their
// configurations name, and the files pass their program's validate.
func TestComposeSplit(t *testing.T) {
	src := filepath.Join(repoRoot(t), "deploy", "compose", "split")
	c := loadCompose(t, src)
	dir := testkit.ShortTempDir(t)
	confs := map[string]string{}
	for service, program := range map[string]string{"router": "receptor-router", "worker": "receptor-worker"} {
		s, ok := c.Services[service]
		if !ok {
			t.Fatalf("no service %s", service)
		}
		if len(s.Entrypoint) != 1 || s.Entrypoint[0] != "/usr/bin/"+program {
			t.Errorf("%s: entrypoint %v, want /usr/bin/%s", service, s.Entrypoint, program)
		}
		files, named := binds(t, c, service)
		if named["/run/receptor"] != "sockets" {
			t.Errorf("%s: /run/receptor is %q, want the shared volume sockets", service, named["/run/receptor"])
		}
		if len(s.Command) != 2 || s.Command[0] != "--config" || files[s.Command[1]] == "" {
			t.Fatalf("%s: command %v does not read a mounted file (%v)", service, s.Command, files)
		}
		b, err := os.ReadFile(filepath.Join(src, files[s.Command[1]]))
		if err != nil {
			t.Fatal(err)
		}
		confs[service] = string(b)
		validateConfig(t, program, dir, service+".yaml", string(b),
			map[string]string{"/run/receptor/": dir + "/", "/var/lib/receptor": filepath.Join(dir, "data")})
	}
	routerSock := param(t, confs["router"], "grpc-server", "filename")
	workerSock := param(t, confs["worker"], "grpc-server", "filename")
	if a := param(t, confs["worker"], "router", "address"); a != "unix://"+routerSock || filepath.Dir(routerSock) != "/run/receptor" {
		t.Errorf("worker's router %q, router serves %q", a, routerSock)
	}
	if a := param(t, confs["router"], "work-agent", "address"); a != "unix://"+workerSock || filepath.Dir(workerSock) != "/run/receptor" {
		t.Errorf("router's work-agent %q, worker serves %q", a, workerSock)
	}
}

// TestComposeMesh runs make-certs.sh (on a copy of the directory) with our
// binary and checks that every node's configuration, given the files
// compose mounts, passes receptor's validate, and that the peers name
// services of the file.
func TestComposeMesh(t *testing.T) {
	src := filepath.Join(repoRoot(t), "deploy", "compose", "mesh")
	dir := filepath.Join(testkit.ShortTempDir(t), "mesh")
	if out, err := exec.Command("cp", "-r", src, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	_ = os.RemoveAll(filepath.Join(dir, "certs")) // a developer's own certificates
	cmd := exec.Command(filepath.Join(dir, "make-certs.sh"))
	cmd.Env = append(os.Environ(), "RECEPTOR="+filepath.Join(binDir, "receptor"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	c := loadCompose(t, dir)
	if len(c.Services) != 3 {
		t.Errorf("%d services, want 3", len(c.Services))
	}
	for service := range c.Services {
		files, _ := binds(t, c, service)
		paths := map[string]string{"/var/lib/receptor": filepath.Join(dir, "data-"+service), "/run/receptor/": dir + "/" + service + "-"}
		for inContainer, host := range files {
			if _, err := os.Stat(filepath.Join(dir, host)); err != nil {
				t.Errorf("%s mounts %s: %v", service, host, err)
			}
			paths[inContainer] = filepath.Join(dir, host)
		}
		conf := files["/etc/receptor/receptor.conf"]
		if conf == "" {
			t.Fatalf("%s mounts no /etc/receptor/receptor.conf", service)
		}
		b, err := os.ReadFile(filepath.Join(dir, conf))
		if err != nil {
			t.Fatal(err)
		}
		if id := param(t, string(b), "node", "id"); id != service {
			t.Errorf("%s: node id %q, want the service's name (its certificate's node ID and DNS name)", service, id)
		}
		if peer := param(t, string(b), "tcp-peer", "address"); peer != "" {
			if _, ok := c.Services[strings.Split(peer, ":")[0]]; !ok {
				t.Errorf("%s peers with %s, not a service of the file", service, peer)
			}
		}
		validateConfig(t, "receptor", dir, service+"-checked.yaml", string(b), paths)
	}
}
