package interop

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// certWithoutAddress makes a certificate for nodeID, signed by p's CA, whose
// only DNS SAN is a name the tests never dial (and no IP SAN), so a
// verifying TLS client dialing 127.0.0.1 sees a hostname mismatch.
func (p *testPKI) certWithoutAddress(t *testing.T, nodeID string) (cert, key string) {
	t.Helper()
	nc := p.Issue(t, testkit.CertRequest{
		Name: nodeID + "-noaddr", CommonName: nodeID, NodeIDs: []string{nodeID},
		DNSNames: []string{"elsewhere.invalid"},
	})
	return nc.Cert, nc.Key
}

// fingerprint is the colon-separated SHA-256 of the certificate file's leaf
// DER, the form pinnedservercert takes.
func fingerprint(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	sum := sha256.Sum256(blk.Bytes)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// tlsEnd is the TLS configuration of one end of a tcp+tls session.
type tlsEnd struct {
	cert, key string
	cas       string   // clientcas (listener) or rootcas (dialer)
	extra     []string // more tls-server / tls-client parameters
}

// tlsCase is one backend TLS scenario.
type tlsCase struct {
	name        string
	listener    func(t *testing.T, id string) tlsEnd
	dialer      func(t *testing.T, id string) tlsEnd
	establishes bool
}

// TestTLSBackends checks docs/protocol.md §9 on backends: tcp+tls sessions between
// upstream and our binary in both dial directions, where a failure case must
// never establish and mintls13 on one side only still connects.
func TestTLSBackends(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	other := newTestPKI(t.TempDir()) // a CA neither side trusts by default
	good := func(p *testPKI, extra ...string) func(t *testing.T, id string) tlsEnd {
		return func(t *testing.T, id string) tlsEnd {
			c, k := p.Node(t, id)
			return tlsEnd{cert: c, key: k, cas: pki.CACert(), extra: extra}
		}
	}
	cases := []tlsCase{
		{name: "server-cert-from-untrusted-ca", listener: good(other), dialer: good(pki)},
		{name: "client-cert-from-untrusted-ca", listener: good(pki), dialer: good(other)},
		{name: "hostname-mismatch", dialer: good(pki), listener: func(t *testing.T, id string) tlsEnd {
			c, k := pki.certWithoutAddress(t, id)
			return tlsEnd{cert: c, key: k, cas: pki.CACert()}
		}},
		{name: "pinned-fingerprint-mismatch", listener: good(pki), dialer: func(t *testing.T, id string) tlsEnd {
			c, k := pki.Node(t, id)
			wrong, _ := pki.Node(t, "someone")
			return tlsEnd{cert: c, key: k, cas: pki.CACert(), extra: []string{"pinnedservercert=" + fingerprint(t, wrong)}}
		}},
		{name: "mintls13-listener-only", listener: good(pki, "mintls13=true"), dialer: good(pki), establishes: true},
		{name: "mintls13-dialer-only", listener: good(pki), dialer: good(pki, "mintls13=true"), establishes: true},
		{name: "pinned-fingerprint-match", listener: good(pki), dialer: func(t *testing.T, id string) tlsEnd {
			c, k := pki.Node(t, id)
			srv, _ := pki.Node(t, otherID(id))
			return tlsEnd{cert: c, key: k, cas: pki.CACert(), extra: []string{"pinnedservercert=" + fingerprint(t, srv)}}
		}, establishes: true},
	}
	type direction struct{ name, listenBin, listenID, dialBin, dialID string }
	dirs := []direction{
		{"ours-dials-upstream", upBin, "up1", bin, "obin"},
		{"upstream-dials-ours", bin, "obin", upBin, "up1"},
	}
	for _, c := range cases {
		for _, d := range dirs {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				l := c.listener(t, d.listenID)
				var port int
				ln := startListening(t, d.listenBin, d.listenID, func() []string {
					port = freeTCPPort(t)
					a := append([]string{"--tls-server", "name=srv", "cert=" + l.cert, "key=" + l.key,
						"requireclientcert=true", "clientcas=" + l.cas}, l.extra...)
					return append(a, "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port), "tls=srv")
				})
				dl := c.dialer(t, d.dialID)
				a := append([]string{"--tls-client", "name=cli", "cert=" + dl.cert, "key=" + dl.key, "rootcas=" + dl.cas}, dl.extra...)
				dn := startProc(t, d.dialBin, d.dialID, append(a, "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port), "tls=cli")...)
				if c.establishes {
					dn.waitConnected(d.listenID, 1)
					ln.waitConnected(d.dialID, 1)
					t.Logf("PASS %s %s: established", c.name, d.name)
					return
				}
				// Evidence that a handshake was attempted and failed, then
				// spot checks that no session ever appears.
				testkit.Eventually(t, convergeTimeout, "a TLS failure in either log", func() error {
					if tlsFailureLogged(dn.Log()) || tlsFailureLogged(ln.Log()) {
						return nil
					}
					return errors.New("no TLS error logged yet")
				})
				neverConnected(t, d.dialID, upConns(t, dn), d.listenID)
				neverConnected(t, d.listenID, upConns(t, ln), d.dialID)
				t.Logf("PASS %s %s: never established; dialer log: %s", c.name, d.name, firstTLSFailure(dn.Log()))
			})
		}
	}
}

// otherID is the peer of id in TestTLSBackends.
func otherID(id string) string {
	if id == "up1" {
		return "obin"
	}
	return "up1"
}

var tlsFailureWords = []string{"tls:", "x509:", "certificate", "handshake"}

func tlsFailureLogged(log string) bool { return firstTLSFailure(log) != "" }

func firstTLSFailure(log string) string {
	for _, line := range strings.Split(log, "\n") {
		for _, w := range tlsFailureWords {
			if strings.Contains(line, w) && !strings.Contains(line, "Initialization") {
				return line
			}
		}
	}
	return ""
}

// exitOf runs bin with args to completion (bounded) and returns its exit
// code and combined output.
func exitOf(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		t.Fatalf("running %s: %v", bin, err)
		return 0, ""
	}
}

// TestStartupRefusesCertWithoutNodeID checks docs/protocol.md §9.1: a TLS
// config whose certificate lacks the node ID stops startup with exit 1 and
// the same message as upstream, for tls-server and tls-client; with
// skipreceptornamescheck both start.
func TestStartupRefusesCertWithoutNodeID(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	cert, key := pki.Node(t, "foo")
	for _, kind := range []string{"tls-server", "tls-client"} {
		t.Run(kind, func(t *testing.T) {
			args := func(dir string, extra ...string) []string {
				a := []string{"--node", "id=bar", "datadir=" + filepath.Join(dir, "data"),
					"--" + kind, "name=t", "cert=" + cert, "key=" + key}
				a = append(a, extra...)
				if kind == "tls-server" {
					return append(a, "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(freeTCPPort(t)), "tls=t")
				}
				return append(a, "--tcp-peer", "address=127.0.0.1:1", "tls=t")
			}
			upCode, upOut := exitOf(t, upBin, args(t.TempDir())...)
			ourCode, ourOut := exitOf(t, bin, args(t.TempDir())...)
			want := fmt.Sprintf("nodeID=bar not found in certificate name(s); names found=[foo]; cfg section=t; server cert=%s", cert)
			if upCode != 1 || !strings.Contains(upOut, want) {
				t.Fatalf("upstream: exit %d, output %q; want 1 and %q", upCode, upOut, want)
			}
			upLine, ourLine := errorLine(upOut), errorLine(ourOut)
			if ourCode != 1 || ourLine != upLine {
				t.Fatalf("ours: exit %d, error line %q; upstream's is %q (exit 1)", ourCode, ourLine, upLine)
			}
			t.Logf("PASS %s: both exit 1 with %q", kind, ourLine)

			// With the check skipped, both start (and are then stopped).
			for _, b := range []string{upBin, bin} {
				p := startProc(t, b, "bar", "--"+kind, "name=t", "cert="+cert, "key="+key, "skipreceptornamescheck=true",
					"--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(freeTCPPort(t)))
				p.Stop()
			}
			t.Logf("PASS %s: skipreceptornamescheck=true starts on both", kind)
		})
	}
}

// errorLine is the "Error: ..." line of a startup failure.
func errorLine(out string) string {
	lines := strings.Split(out, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Error: ") })
	if i < 0 {
		return ""
	}
	return lines[i]
}

// TestTLSOurClientVariants covers the TLS backend cases (docs/protocol.md §9) that upstream's
// command line cannot express on its side: our tcp+tls dialer without a
// client certificate against upstream's requireclientcert never establishes,
// and our client limited to TLS 1.2 connects within upstream's restricted
// suite and curve list (docs/protocol.md §9.1).
func TestTLSOurClientVariants(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	listen := func(t *testing.T) (*procNode, string) {
		var port int
		up := startListening(t, bin, "up1", func() []string {
			port = freeTCPPort(t)
			return append(pki.UpstreamTLSArgs(t, "up1"),
				"--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port), "tls=srv")
		})
		return up, fmt.Sprintf("127.0.0.1:%d", port)
	}
	t.Run("no-client-cert", func(t *testing.T) {
		t.Parallel()
		up, addr := listen(t)
		conf, err := tlsconf.NewClientConfig(tlsconf.ClientOptions{Name: "cli", RootCAs: pki.CACert()}, "ours")
		if err != nil {
			t.Fatal(err)
		}
		ours := newOurNode(t, "ours")
		ours.DialTCP(addr, conf, mesh.BackendOptions{})
		testkit.Eventually(t, convergeTimeout, "upstream logs the failed handshake", func() error {
			if tlsFailureLogged(up.Log()) {
				return nil
			}
			return errors.New("no TLS error logged yet")
		})
		neverConnected(t, "up1", upConns(t, up), "ours")
		neverConnected(t, "ours", ourConns(ours), "up1")
		t.Logf("PASS no client certificate against requireclientcert: never established (%s)", firstTLSFailure(up.Log()))
	})
	t.Run("tls12-only-client", func(t *testing.T) {
		t.Parallel()
		up, addr := listen(t)
		conf := pki.OurClientTLS(t, "ours")
		conf.MaxVersion = tls.VersionTLS12
		ours := newOurNode(t, "ours")
		ours.DialTCP(addr, conf, mesh.BackendOptions{})
		ours.waitConnected("up1", 1)
		up.waitConnected("ours", 1)
		t.Log("PASS our TLS 1.2-only client connects to upstream's restricted TLS 1.2 configuration")
	})
}
