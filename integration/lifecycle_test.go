package integration

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestShutdownSignals: SIGTERM and SIGINT both end a meshed node with exit
// status 0, and its peer notices the session going away.
func TestShutdownSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := startPair(t)
			if err := b.signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, stopTimeout, "nodeb exits", func() error {
				exited, _ := b.Exited()
				if exited {
					return nil
				}
				return errors.New("want exited")
			})
			if _, err := b.Exited(); err != nil {
				t.Errorf("nodeb after %s: %v, want exit status 0", tc.name, err)
			}
			a.WaitStatus("nodeb's session gone", func(s Status) bool { return !s.ConnectedTo("nodeb") })
		})
	}
}

// TestHarnessRetriesTakenPort: a node whose listener port was taken
// between allocation and start is restarted on a new port (the harness's
// answer to bind races with other processes).
func TestHarnessRetriesTakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n := NewNode(t, "nodea")
	n.ports["mesh"] = taken.Addr().(*net.TCPAddr).Port
	n.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }})
	if got := n.Port("mesh"); got == taken.Addr().(*net.TCPAddr).Port {
		t.Fatalf("node kept the taken port %d", got)
	}
	c, err := net.DialTimeout("tcp", n.Addr("mesh"), commandTimeout)
	if err != nil {
		t.Fatalf("the node's new listener: %v", err)
	}
	_ = c.Close()
	if !n.LogContains("address already in use") {
		t.Errorf("the first attempt did not fail on the taken port")
	}
}

// signal sends sig to the running process.
func (n *Node) signal(sig os.Signal) error {
	n.mu.Lock()
	proc := n.proc
	n.stopped = true
	n.mu.Unlock()
	if proc == nil {
		return os.ErrProcessDone
	}
	return proc.Signal(sig)
}
