package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// fakeTB records Fatalf and ends the goroutine as testing.T does.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFake(fn func(tb testing.TB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, "third call", func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	msg := runFake(func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, "the impossible", func() error { return errors.New("still false") })
	})
	if !strings.Contains(msg, "the impossible") || !strings.Contains(msg, "still false") || !strings.Contains(msg, "30ms") {
		t.Errorf("failure message %q", msg)
	}
}

func TestPoll(t *testing.T) {
	start := time.Now()
	if Poll(40*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a false condition returned true")
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Poll gave up after %v", d)
	}
	n := 0
	if !Poll(5*time.Second, func() bool { n++; return n == 4 }) {
		t.Error("Poll of a condition that becomes true returned false")
	}
}

func TestCA(t *testing.T) {
	ca := NewCA(t)
	c := ca.Issue(t, IssueOptions{
		CommonName: "n1", NodeIDs: []string{"n1", "n1b"}, DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: ServerOnly,
	})
	if _, err := c.X509.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	ids, err := tlsconf.NodeIDsFromCert(c.X509)
	if err != nil || !slices.Equal(ids, []string{"n1", "n1b"}) {
		t.Errorf("node IDs %q %v", ids, err)
	}
	if !slices.Equal(c.X509.DNSNames, []string{"localhost"}) || len(c.X509.IPAddresses) != 1 {
		t.Errorf("SANs %v %v", c.X509.DNSNames, c.X509.IPAddresses)
	}
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		t.Errorf("PEM files: %v", err)
	}
	if c.CAFile != ca.CertFile() {
		t.Errorf("CAFile %s, CA %s", c.CAFile, ca.CertFile())
	}
	rsaCert := ca.Issue(t, IssueOptions{Key: RSA, Usage: ClientOnly, NotAfter: time.Now().Add(time.Minute)})
	if rsaCert.X509.PublicKeyAlgorithm != x509.RSA || rsaCert.X509.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("RSA client cert: %v %v", rsaCert.X509.PublicKeyAlgorithm, rsaCert.X509.ExtKeyUsage)
	}
	self := SelfSigned(t, IssueOptions{CommonName: "rogue"})
	if _, err := self.X509.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("the CA trusts a self-signed certificate")
	}
	if _, err := self.X509.Verify(x509.VerifyOptions{Roots: self.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("self-signed certificate not trusted by its own pool: %v", err)
	}
}

func TestCommandPKIInProcess(t *testing.T) {
	p := NewCommandPKI(InProcessCertTool(), t.TempDir(), "testkit CA")
	nc := p.Node(t, "node1")
	if again := p.Node(t, "node1"); again != nc {
		t.Errorf("second Node call made a new pair: %v %v", again, nc)
	}
	pair, err := tls.LoadX509KeyPair(nc.Cert, nc.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.VerifyPeerNodeID(pair.Leaf, "node1"); err != nil {
		t.Error(err)
	}
	other := p.Issue(t, CertRequest{Name: "x", CommonName: "x", NodeIDs: []string{"x"}, DNSNames: []string{"elsewhere.invalid"}})
	if _, err := tls.LoadX509KeyPair(other.Cert, other.Key); err != nil {
		t.Error(err)
	}
}

func TestProcess(t *testing.T) {
	dir := t.TempDir()
	log := dir + "/p.log"
	p, err := StartProcess(dir, log, "/bin/sh", "-c", "echo ready; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.WaitReady(10*time.Second, func() error {
		if !strings.Contains(LogTail(log, 100), "ready") {
			return errors.New("not logged yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Exited(); exited || p.Pid() <= 0 {
		t.Fatalf("exited %v pid %d", exited, p.Pid())
	}
	if err := p.Stop(10 * time.Second); err == nil || errors.Is(err, ErrStopTimeout) {
		t.Errorf("Stop of a shell killed by SIGTERM: %v", err)
	}

	early, err := StartProcess(dir, log, "/bin/sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(early.Kill)
	err = early.WaitReady(10*time.Second, func() error { return errors.New("never ready") })
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") {
		t.Errorf("WaitReady of an exiting process: %v", err)
	}

	stubborn, err := StartProcess(dir, log, "/bin/sh", "-c", `trap "" TERM; echo up; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stubborn.Kill)
	if err := stubborn.WaitReady(10*time.Second, func() error {
		if strings.Count(LogTail(log, 1000), "up") == 0 {
			return errors.New("no trap yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := stubborn.Stop(100 * time.Millisecond); !errors.Is(err, ErrStopTimeout) {
		t.Errorf("Stop of a process ignoring SIGTERM: %v", err)
	}
	if exited, _ := stubborn.Exited(); !exited {
		t.Error("Stop left a stubborn process running")
	}
}
