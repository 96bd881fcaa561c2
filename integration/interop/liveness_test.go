package interop

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// idleTimeout bounds waits that include the 21-26 s session idle timeout.
const idleTimeout = 45 * time.Second

// TestIdlePeerDropped checks docs/protocol.md §5.6: a silent upstream peer
// (SIGSTOP) is dropped by our idle timeout, and the session comes back once
// it resumes.
func TestIdlePeerDropped(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	var port int
	up := startListening(t, bin, "up1", func() []string {
		port = freeTCPPort(t)
		return []string{"--tcp-listener", "bindaddr=127.0.0.1", fmt.Sprintf("port=%d", port)}
	})
	ours := newOurNode(t, "ours")
	ours.DialTCP(fmt.Sprintf("127.0.0.1:%d", port), nil, mesh.BackendOptions{})
	ours.waitConnected("up1", 1)

	if err := up.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP upstream: %v", err)
	}
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = up.proc.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	testkit.Eventually(t, idleTimeout, "our node drops the silent upstream session", func() error {
		if !slices.Contains(ourConns(ours)(), "up1") {
			return nil
		}
		return fmt.Errorf("connections %v", ourConns(ours)())
	})
	t.Logf("PASS session to the stopped upstream dropped after %v (expected 21-26 s, docs/protocol.md §5.6)", time.Since(stopped).Round(time.Second))

	resume()
	ours.waitConnected("up1", 1)
	up.waitConnected("ours", 1)
	t.Log("PASS session re-established after upstream resumed")
}

// TestUDPPeerRestart checks docs/protocol.md §5.7 and §3.3: upstream's udp-peer
// restarts (new source port, same node ID); our listener rejects it as
// already connected until the old session idles out, then accepts it.
func TestUDPPeerRestart(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	ours := newOurNode(t, "ours")
	port := ours.ListenUDP(mesh.BackendOptions{})
	args := []string{"--udp-peer", fmt.Sprintf("address=127.0.0.1:%d", port)}
	up := startProc(t, bin, "up1", args...)
	ours.waitConnected("up1", 1)
	up.waitConnected("ours", 1)

	up.Stop()
	restarted := time.Now()
	up2 := startProc(t, bin, "up1", args...)
	testkit.Eventually(t, idleTimeout+convergeTimeout, "restarted up1 lists ours", func() error {
		s, err := up2.Status()
		if err != nil {
			return err
		}
		_, ok := s.ConnCost("ours")
		if ok {
			return nil
		}
		return fmt.Errorf("connections %+v", s.Connections)
	})
	ours.waitConnected("up1", 1)
	t.Logf("PASS restarted udp peer reconnected after %v", time.Since(restarted).Round(time.Second))
}
