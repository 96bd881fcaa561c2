package integration

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestFirewallRegexAlternationAnchored: a firewall regex with an
// alternation must match a whole node ID. nodeb rejects /nodea|nodex/, so
// nodea is blocked while nodea-evil, whose ID only starts with one branch,
// still reaches nodeb.
func TestFirewallRegexAlternationAnchored(t *testing.T) {
	t.Parallel()
	a, b, e := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodea-evil")
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, []string{"firewallrules", "[{action: reject, fromnode: '/nodea|nodex/'}]"},
			asYAML(tcpTransport.listener(n)))
	}})
	a.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(b))...) }})
	e.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(b))...) }})
	a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodea-evil": "nodeb"})
	e.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodea": "nodeb"})

	if got, want := a.Command("ping nodeb"), `{"Error":"blocked by firewall","Success":false}`; got != want {
		t.Errorf("ping nodeb from nodea: got %s, want %s", got, want)
	}
	checkPing(t, e, "nodeb")
	stillServes(t, b)
}

// TestUnsafeDirectoriesRefused: a world-writable data directory, or a
// world-writable directory holding the control socket, makes the node
// refuse to start with an error naming the path, owner and mode; once the
// directory is private again the same configuration starts and serves.
func TestUnsafeDirectoriesRefused(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	datadir := filepath.Join(n.Dir, "data")
	sockDir := filepath.Join(n.Dir, "run")
	for _, d := range []string{datadir, sockDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(sockDir, "ctl.sock")
	args := []string{"--node", "id=nodea", "datadir=" + datadir, "--local-only",
		"--control-service", "filename=" + sock,
		"--work-command", "worktype=cat", "command=cat"}
	for _, bad := range []string{datadir, sockDir} {
		if err := os.Chmod(bad, 0o777); err != nil {
			t.Fatal(err)
		}
		res := runCommand(t, n.Dir, "receptor", "", args...)
		if res.Code != 1 || !strings.Contains(res.Out, "Error: ") || !strings.Contains(res.Out, bad+" (owner uid ") ||
			!strings.Contains(res.Out, "drwxrwxrwx") || !strings.Contains(res.Out, "writable by its group or by others") {
			t.Errorf("start with %s mode 0777: exit %d, want 1 with an error naming path, owner and mode\n%s", bad, res.Code, res.Out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("a refused start created the socket %s", sock)
		}
		if err := os.Chmod(bad, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	n.Socket = sock
	n.Start(Spec{Bin: "receptor", Args: func(*Node) []string { return args }})
	stillServes(t, n)
}

// TestTLSOnlyForwardSecretSuites: a TLS control service refuses a TLS 1.2
// client that offers only a suite without an ephemeral key exchange, and
// serves one offering ECDHE.
func TestTLSOnlyForwardSecretSuites(t *testing.T) {
	t.Parallel()
	n, _, cc := startTLSControl(t)
	pair, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(suite uint16) (string, error) {
		d := &net.Dialer{Timeout: commandTimeout}
		c, err := tls.DialWithDialer(d, "tcp", n.Addr("ctl"), &tls.Config{
			Certificates:       []tls.Certificate{pair},
			InsecureSkipVerify: true, // only the suite matters here
			MaxVersion:         tls.VersionTLS12, CipherSuites: []uint16{suite},
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(commandTimeout))
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		return string(buf[:k]), err
	}
	testkit.Eventually(t, startTimeout, "TLS control listener with an ECDHE suite", func() error {
		greeting, err := dial(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
		if err != nil {
			t.Logf("ECDHE dial: %v", err)
		}
		if err == nil && strings.HasPrefix(greeting, "Receptor Control") {
			return nil
		}
		return errors.New("want err == nil && strings.HasPrefix(greeting, \"Receptor Control\")")
	})
	for _, suite := range []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384} {
		if greeting, err := dial(suite); err == nil {
			t.Errorf("client offering only %s got a session: %q", tls.CipherSuiteName(suite), greeting)
		} else {
			t.Logf("%s refused: %v", tls.CipherSuiteName(suite), err)
		}
	}
	stillServes(t, n)
}

// TestControlTCPPlaintextOffLoopbackRefused: a control-service tcplisten
// without tcptls on all interfaces or another host's address is a
// configuration error; on 127.0.0.1 it serves.
func TestControlTCPPlaintextOffLoopbackRefused(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	port := n.Port("ctl")
	for _, listen := range []string{fmt.Sprint(port), fmt.Sprintf(":%d", port), fmt.Sprintf("0.0.0.0:%d", port), fmt.Sprintf("[::]:%d", port)} {
		res := runCommand(t, n.Dir, routerBin, "", nodeArgs(n, "--local-only", "--control-service", "service=", "tcplisten="+listen)...)
		want := fmt.Sprintf(`Error: control-service: tcplisten: %q: refusing to serve the control service without TLS on a non-loopback address`, listen)
		if res.Code != 1 || !strings.Contains(res.Out, want) {
			t.Errorf("plaintext tcplisten=%s: exit %d, want 1 with %q\n%s", listen, res.Code, want, res.Out)
		}
	}
	n.Start(Spec{Args: func(n *Node) []string {
		// A plaintext TCP caller is anonymous: let it read.
		return nodeArgs(n, "--local-only", "--control-service", "service=", "tcplisten="+n.Addr("ctl"),
			"--access", "role=reader", "principals=anonymous")
	}})
	testkit.Eventually(t, startTimeout, "status over plaintext TCP on 127.0.0.1", func() error {
		c, err := net.DialTimeout("tcp", n.Addr("ctl"), commandTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(commandTimeout))
		_, _ = io.WriteString(c, `{"command":"status","requested_fields":["NodeID"]}`+"\n")
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		if strings.Contains(string(b), `{"NodeID":"nodea"}`) {
			return nil
		}
		return errors.New("want strings.Contains(string(b), `{\"NodeID\":\"nodea\"}`)")
	})
	stillServes(t, n)
}

// TestControlIdleConnections: 2000 TCP connections that never send a
// request (more than the 1024 sessions a listener runs at once) neither
// stop the node's other listeners nor, once the idle timeout closes them,
// its TCP listener: a fresh client gets its status. Every idle connection
// is greeted and then closed, no sooner than the timeout.
func TestControlIdleConnections(t *testing.T) {
	t.Parallel()
	const (
		idleConns = 2000
		idle      = 2 * time.Second
	)
	// Go raises the soft descriptor limit to the hard one; both processes
	// need idleConns descriptors.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 2*idleConns+500 && lim.Max > lim.Cur {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < idleConns+500 {
		t.Skipf("descriptor limit %d is too low for %d connections", lim.Cur, idleConns)
	}
	n := NewNode(t, "nodea")
	n.Start(Spec{Args: func(n *Node) []string {
		return nodeArgs(n, "--local-only", "--control-service", "service=", "tcplisten="+n.Addr("ctl"),
			"idletimeout="+idle.String(), "--access", "role=reader", "principals=anonymous")
	}})
	// One working session proves the listener is up before the flood.
	tcpStatus := func() (time.Duration, error) {
		start := time.Now()
		c, err := net.DialTimeout("tcp", n.Addr("ctl"), commandTimeout)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * commandTimeout))
		_, _ = io.WriteString(c, `{"command":"status","requested_fields":["NodeID"]}`+"\n")
		br := bufio.NewReader(c)
		for _, want := range []string{"Receptor Control, node nodea\n", `{"NodeID":"nodea"}` + "\n"} {
			if line, err := br.ReadString('\n'); line != want {
				return 0, fmt.Errorf("got %q (%v), want %q", line, err, want)
			}
		}
		return time.Since(start), nil
	}
	testkit.Eventually(t, startTimeout, "TCP control listener", func() error {
		_, err := tcpStatus()
		return err
	})

	type result struct {
		greeted bool
		err     error
		open    time.Duration // from dial to EOF
	}
	results := make([]result, idleConns)
	var wg sync.WaitGroup
	dialStart := time.Now()
	for i := range idleConns {
		start := time.Now() // the server's clock for it starts later, at accept
		c, err := net.DialTimeout("tcp", n.Addr("ctl"), commandTimeout)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10*idle + 2*commandTimeout))
			b, err := io.ReadAll(c)
			results[i] = result{greeted: string(b) == "Receptor Control, node nodea\n", err: err, open: time.Since(start)}
		})
	}
	t.Logf("%d idle connections opened in %v", idleConns, time.Since(dialStart).Round(time.Millisecond))

	// The Unix socket is another listener with its own sessions.
	start := time.Now()
	stillServes(t, n)
	unixTook := time.Since(start)
	// A fresh TCP client waits behind the idle ones in the accept queue
	// until the timeout frees sessions.
	tcpTook, err := tcpStatus()
	if err != nil {
		t.Fatalf("fresh TCP status after %d idle connections: %v", idleConns, err)
	}
	t.Logf("fresh status with %d idle connections: unix socket %v, TCP %v (idle timeout %v)",
		idleConns, unixTook.Round(time.Millisecond), tcpTook.Round(time.Millisecond), idle)
	if unixTook > 5*time.Second {
		t.Errorf("unix-socket status took %v with %d idle TCP connections", unixTook, idleConns)
	}
	if tcpTook > 3*idle+10*time.Second {
		t.Errorf("fresh TCP status took %v, want about the idle timeout %v", tcpTook, idle)
	}

	wg.Wait()
	var longest time.Duration
	for i, r := range results {
		if !r.greeted || r.err != nil {
			t.Fatalf("idle connection %d: greeted %v, err %v", i, r.greeted, r.err)
		}
		if r.open < idle {
			t.Fatalf("idle connection %d closed after %v, before the %v timeout", i, r.open, idle)
		}
		longest = max(longest, r.open)
	}
	t.Logf("all %d idle connections greeted and closed; the last after %v", idleConns, longest.Round(time.Millisecond))
	stillServes(t, n)
}
