package testkit

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// ports hands out loopback ports that were free a moment ago, never the
// same one twice in this process, so the nodes of one test run do not
// collide with each other (collisions with other processes are a harness's
// to retry).
var ports struct {
	sync.Mutex
	used map[int]bool
}

// FreePort returns a port of 127.0.0.1 that was free for both TCP and UDP
// a moment ago, so one number serves every backend kind. The kernel picks
// the TCP port; under load (thousands of sockets from parallel tests) a
// pick can fail a check many times in a row, so it tries hard and says why
// when it gives up.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	var udpBusy, handedOut int
	for range 2000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("reserving a port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if uerr != nil {
			udpBusy++
			continue
		}
		_ = u.Close()
		if ports.used[port] {
			handedOut++
			continue
		}
		ports.used[port] = true
		return port
	}
	tb.Fatalf("no free port found in 2000 tries (%d with the UDP port busy, %d already handed out)", udpBusy, handedOut)
	return 0
}

// ShortTempDir is a temporary directory with a short path, removed when
// the test ends: unix socket paths are limited to about 100 bytes, too few
// for tb.TempDir() under subtests.
func ShortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "rt-")
	if err != nil {
		tb.Fatalf("temp dir: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Entity renders one item of an upstream v1 YAML configuration list:
// "- name:" and then its key/value pairs.
func Entity(name string, kv ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s:\n", name)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "    %s: %s\n", kv[i], kv[i+1])
	}
	return b.String()
}

// YAMLQuote quotes s as a YAML double-quoted scalar.
func YAMLQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
