package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestKubernetesManifests renders deploy/kubernetes with kubectl and checks
// that its pieces fit: the two containers share the sockets their
// configurations name through one emptyDir, the probes check those
// sockets with receptor-probe, the Service and the Prometheus annotations
// point at the ports the configuration listens on, the Secret's files are
// where the configuration reads them, and both configurations pass their
// program's validate with a Secret made as the README says.
func TestKubernetesManifests(t *testing.T) {
	docs := kustomize(t)
	byKind := map[string]map[string]any{}
	for _, d := range docs {
		byKind[str(d["kind"])] = d
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service"} {
		if byKind[k] == nil {
			t.Fatalf("no %s in the rendered manifests (kinds %v)", k, keys(byKind))
		}
	}
	cm, dep, svc := byKind["ConfigMap"], byKind["Deployment"], byKind["Service"]
	routerConf, workerConf := str(get(cm, "data", "router.yaml")), str(get(cm, "data", "worker.yaml"))
	if routerConf == "" || workerConf == "" {
		t.Fatal("ConfigMap lacks router.yaml or worker.yaml")
	}
	if n := str(get(dep, "spec", "replicas")); n != "1" {
		t.Errorf("replicas %s: a node ID must run once", n)
	}

	pod := get(dep, "spec", "template", "spec")
	containers := map[string]any{}
	for i := 0; get(pod, "containers", i) != nil; i++ {
		c := get(pod, "containers", i)
		containers[str(get(c, "name"))] = c
	}
	router, worker := containers["router"], containers["worker"]
	if router == nil || worker == nil || len(containers) != 2 {
		t.Fatalf("containers %v, want router and worker", keys(containers))
	}
	volumes := map[string]any{}
	for i := 0; get(pod, "volumes", i) != nil; i++ {
		v := get(pod, "volumes", i)
		volumes[str(get(v, "name"))] = v
	}
	if get(volumes["sockets"], "emptyDir") == nil {
		t.Errorf("volume sockets is not an emptyDir: %v", volumes["sockets"])
	}
	if s := str(get(volumes["tls"], "secret", "secretName")); s != "receptor-tls" {
		t.Errorf("volume tls: secret %q, want receptor-tls", s)
	}
	if s := str(get(volumes["config"], "configMap", "name")); s != str(get(cm, "metadata", "name")) {
		t.Errorf("volume config: configMap %q", s)
	}

	// The sockets: the worker's router address is the router's gRPC
	// socket, the router's work-agent address the worker's, all in the
	// shared mount.
	sockDir := mountPath(t, router, "sockets")
	if w := mountPath(t, worker, "sockets"); w != sockDir {
		t.Errorf("sockets mounted at %s (router) and %s (worker)", sockDir, w)
	}
	routerSock := param(t, routerConf, "grpc-server", "filename")
	workerSock := param(t, workerConf, "grpc-server", "filename")
	for _, s := range []string{routerSock, workerSock} {
		if filepath.Dir(s) != sockDir {
			t.Errorf("socket %s is not in the shared emptyDir %s", s, sockDir)
		}
	}
	if a := param(t, workerConf, "router", "address"); a != "unix://"+routerSock {
		t.Errorf("worker's router address %q, router serves %s", a, routerSock)
	}
	if a := param(t, routerConf, "work-agent", "address"); a != "unix://"+workerSock {
		t.Errorf("router's work-agent address %q, worker serves %s", a, workerSock)
	}
	if a, b := param(t, routerConf, "node", "id"), param(t, workerConf, "node", "id"); a != b || a == "" {
		t.Errorf("node IDs %q (router) and %q (worker) differ", a, b)
	}

	// Probes: receptor-probe on each container's own gRPC socket.
	for name, sock := range map[string]string{"router": routerSock, "worker": workerSock} {
		for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
			cmd := get(containers[name], probe, "exec", "command")
			want := "[/usr/bin/receptor-probe unix://" + sock + "]"
			if str(cmd) != want {
				t.Errorf("%s %s: %v, want %s", name, probe, cmd, want)
			}
		}
	}

	// Ports: the Service's target is the mesh listener; Prometheus scrapes
	// the http-gateway's port.
	ports := map[string]string{}
	for i := 0; get(router, "ports", i) != nil; i++ {
		p := get(router, "ports", i)
		ports[str(get(p, "name"))] = str(get(p, "containerPort"))
	}
	if mesh := param(t, routerConf, "tcp-listener", "port"); ports["mesh"] != mesh {
		t.Errorf("container port mesh %q, tcp-listener port %q", ports["mesh"], mesh)
	}
	if tp := str(get(svc, "spec", "ports", 0, "targetPort")); tp != "mesh" {
		t.Errorf("Service targetPort %q, want mesh", tp)
	}
	if sel := str(get(svc, "spec", "selector", "app.kubernetes.io/name")); sel != str(get(dep, "spec", "template", "metadata", "labels", "app.kubernetes.io/name")) {
		t.Errorf("Service selector %q does not select the pod", sel)
	}
	ann := get(dep, "spec", "template", "metadata", "annotations")
	listen := param(t, routerConf, "http-gateway", "tcplisten")
	if p := str(get(ann, "prometheus.io/port")); !strings.HasSuffix(listen, ":"+p) || ports["http"] != p {
		t.Errorf("prometheus.io/port %q: http-gateway listens on %q, container port http %q", p, listen, ports["http"])
	}
	// Off loopback the gateway refuses to start without TLS (validate does
	// not see that: it is checked when the listener opens).
	if param(t, routerConf, "http-gateway", "tls") == "" || str(get(ann, "prometheus.io/scheme")) != "https" {
		t.Errorf("http-gateway on %q needs tls (and prometheus.io/scheme https)", listen)
	}
	if p := str(get(ann, "prometheus.io/path")); p != "/metrics" {
		t.Errorf("prometheus.io/path %q", p)
	}

	// The Secret as the README makes it, and both configurations accepted
	// by their programs with its files.
	dir := testkit.ShortTempDir(t)
	nodeID := param(t, routerConf, "node", "id")
	ca, crt, key := certs(t, dir, nodeID)
	out, err := exec.Command("kubectl", "create", "secret", "generic", "receptor-tls",
		"--from-file=ca.crt="+ca, "--from-file=tls.crt="+crt, "--from-file=tls.key="+key,
		"--dry-run=client", "-o", "yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl create secret: %v\n%s", err, out)
	}
	tlsDir := mountPath(t, router, "tls")
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if !strings.Contains(string(out), "  "+f+": ") {
			t.Errorf("secret lacks %s:\n%s", f, out)
		}
		if !strings.Contains(routerConf, tlsDir+"/"+f) {
			t.Errorf("router.yaml does not read %s/%s", tlsDir, f)
		}
	}
	paths := map[string]string{tlsDir + "/ca.crt": ca, tlsDir + "/tls.crt": crt, tlsDir + "/tls.key": key,
		sockDir + "/": dir + "/", "/var/lib/receptor": filepath.Join(dir, "data")}
	validateConfig(t, "receptor-router", dir, "router.yaml", routerConf, paths)
	validateConfig(t, "receptor-worker", dir, "worker.yaml", workerConf, paths)
}

// mountPath is where container c mounts volume (a subPath mount is not
// the directory itself and is skipped).
func mountPath(t *testing.T, c any, volume string) string {
	t.Helper()
	for i := 0; get(c, "volumeMounts", i) != nil; i++ {
		m := get(c, "volumeMounts", i)
		if str(get(m, "name")) == volume && get(m, "subPath") == nil {
			return str(get(m, "mountPath"))
		}
	}
	t.Fatalf("container %s does not mount %s", str(get(c, "name")), volume)
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
