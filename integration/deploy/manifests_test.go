package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"
)

// certs makes a CA and a node certificate for nodeID with the receptor
// binary's own certificate commands (as deploy/compose/mesh/make-certs.sh
// and deploy/kubernetes/README.md do) and returns their paths.
func certs(t *testing.T, dir, nodeID string) (ca, crt, key string) {
	t.Helper()
	ca, crt, key = filepath.Join(dir, "ca.crt"), filepath.Join(dir, nodeID+".crt"), filepath.Join(dir, nodeID+".key")
	runBin(t, "receptor", "--cert-init", "commonname=test CA", "bits=2048",
		"outcert="+ca, "outkey="+filepath.Join(dir, "ca.key"))
	runBin(t, "receptor", "--cert-makereq", "commonname="+nodeID, "nodeid="+nodeID, "dnsname="+nodeID,
		"bits=2048", "outreq="+filepath.Join(dir, nodeID+".csr"), "outkey="+key)
	runBin(t, "receptor", "--cert-signreq", "req="+filepath.Join(dir, nodeID+".csr"), "cacert="+ca,
		"cakey="+filepath.Join(dir, "ca.key"), "outcert="+crt, "verify=true")
	return ca, crt, key
}

// runBin runs one of our binaries and returns its combined output.
func runBin(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// validateConfig writes body to dir/name with the container paths of
// files replaced by the given host paths and runs `PROGRAM validate` on
// it: the configuration is what that program accepts, certificates
// included.
func validateConfig(t *testing.T, program, dir, name, body string, paths map[string]string) {
	t.Helper()
	for from, to := range paths {
		body = strings.ReplaceAll(body, from, to)
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, 0o600, body)
	out, err := exec.Command(filepath.Join(binDir, program), "validate", "--config", path).CombinedOutput()
	if err != nil {
		t.Errorf("%s validate %s: %v\n%s\n--- file:\n%s", program, name, err, out, body)
	}
}

// entities parses an upstream v1 configuration into its entities, each a
// name and its parameters (nil for a bare entity).
func entities(t *testing.T, body string) []yaml.MapItem {
	t.Helper()
	var list []yaml.MapSlice
	if err := yaml.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("parsing configuration: %v\n%s", err, body)
	}
	var out []yaml.MapItem
	for _, e := range list {
		out = append(out, e...)
	}
	return out
}

// param is the parameter key of the first entity called name, or "".
func param(t *testing.T, body, name, key string) string {
	t.Helper()
	for _, e := range entities(t, body) {
		if e.Key != name {
			continue
		}
		m, _ := e.Value.(yaml.MapSlice)
		for _, kv := range m {
			if kv.Key == key {
				return fmt.Sprint(kv.Value)
			}
		}
	}
	return ""
}

// kustomize renders deploy/kubernetes with `kubectl kustomize` (no API
// server needed) and returns its documents.
func kustomize(t *testing.T) []map[string]any {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(repoRoot(t), "deploy", "kubernetes")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding kubectl kustomize output: %v", err)
		}
		docs = append(docs, d)
	}
	return docs
}

// get walks a decoded YAML document by keys and indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[any]any)
			if !ok {
				if ms, ok2 := v.(map[string]any); ok2 {
					v = ms[k]
					continue
				}
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
