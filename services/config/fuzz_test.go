package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// checkResult asserts the loader's contract: an *Error, or a config whose
// implicit node has an ID.
func checkResult(t *testing.T, c *Config, err error) {
	t.Helper()
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is %T, not *Error", err, err)
		}
		if c != nil {
			t.Fatal("config returned with an error")
		}
		return
	}
	if c.Help || c.BashCompletion || c.Exclusive != nil {
		return
	}
	if c.Node.ID == "" {
		t.Fatal("loaded config has no node ID")
	}
	if !hasNode(c) {
		t.Fatalf("order lacks the node: %+v", c.Order)
	}
}

func hasNode(c *Config) bool {
	for _, r := range c.Order {
		if r.Entity == "node" {
			return true
		}
	}
	return false
}

// FuzzParseArgs feeds NUL-separated argument lists and environments.
func FuzzParseArgs(f *testing.F) {
	for _, seed := range []struct{ args, env string }{
		{"--node\x00id=a\x00--tcp-listener\x002222\x00--tcp-peer\x00address=x:1", ""},
		{"--node\x00a\x00--log-level\x00debug\x00--tls-server\x00name=s\x00cert=c\x00key=k\x00--control-service\x00tcplisten=1\x00tcptls=s", ""},
		{"--tcp-listener\x00port=1\x00nodecost={\"a\":1}\x00allowedpeers=[\"x\"]\x00allowedpeers=y", "RECEPTOR_NODE_ID=n"},
		{"--version", ""},
		{"--cert-makereq\x00commonname=c\x00outreq=r\x00outkey=k\x00bits=0x800\x00ipaddress=::1", ""},
		{"--node\x00id=a\x00firewallrules=[{\"action\":\"drop\"}]", "RECEPTOR_GRPC_SERVER_3_FILENAME=/x"},
		{"port=1", ""},
		{"--work-python\x00worktype=w\x00plugin=p\x00function=f\x00config={\"a\":{\"b\":[1]}}", "RECEPTOR_LOG_LEVEL=info\x00RECEPTOR_TRACE=maybe"},
		{"-c\x00testdata/spec/v2.yaml\x00--config\x00testdata/mesh1/node1.yaml", ""},
	} {
		f.Add(seed.args, seed.env)
	}
	l := testLoader("fuzzhost")
	l.readFile = func(path string) ([]byte, error) {
		// Only the package's own test data: fuzzed paths must not reach
		// arbitrary files.
		if !strings.HasPrefix(path, "testdata/") || strings.Contains(path, "..") {
			return nil, os.ErrNotExist
		}
		return readFileBounded(path)
	}
	f.Fuzz(func(t *testing.T, args, env string) {
		var a, e []string
		if args != "" {
			a = strings.Split(args, "\x00")
		}
		if env != "" {
			e = strings.Split(env, "\x00")
		}
		c, err := l.ParseArgs(a, e)
		checkResult(t, c, err)
	})
}

// FuzzLoadYAML feeds YAML to the shape-detecting file loader and to both
// forms directly.
func FuzzLoadYAML(f *testing.F) {
	for _, path := range []string{
		"testdata/mesh1/node1.yaml", "testdata/mesh1/node3.yaml", "testdata/access_control/node1.yaml",
		"testdata/spec/mesh-17.1-complete.yaml", "testdata/spec/all-entities-v1.yaml", "testdata/spec/v2.yaml",
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{"", "- trace", "- node: [a]", "- a: &x [*x]", "node: {id: a}\ntcp-peers: [{address: 'a:1'}]",
		"- tcp-listener:\n    port: 1\n    nodecost: {1: 2, true: x}", "trace: false\nlocal-only: {local: false}", "version: 2",
		"- work-python:\n    worktype: w\n    plugin: p\n    function: f\n    config: {a: {b: {c: [1, {d: e}]}}}"} {
		f.Add([]byte(s))
	}
	l := testLoader("fuzzhost")
	f.Fuzz(func(t *testing.T, data []byte) {
		fl := New(Options{Logger: l.log, Hostname: l.hostname, ReadFile: func(string) ([]byte, error) { return data, nil }})
		c, err := fl.LoadFile("fuzz.yaml", nil)
		checkResult(t, c, err)
		c, err = l.LoadV1("fuzz.yaml", data, nil)
		checkResult(t, c, err)
		c, err = l.LoadV2("fuzz.yaml", data, nil)
		checkResult(t, c, err)
	})
}
