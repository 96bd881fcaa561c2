package interop

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// rsaKeyPair makes an RSA private key and its PKIX public key with openssl
// (genrsa, rsa -pubout), as an operator would (docs/protocol.md §14.3).
func rsaKeyPair(t *testing.T) (priv, pub string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		skipTest(t, "openssl is not installed")
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "signing.pem"), filepath.Join(dir, "verify.pem")
	for _, args := range [][]string{
		{"genrsa", "-out", priv, "2048"},
		{"rsa", "-in", priv, "-pubout", "-out", pub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return priv, pub
}

// submitError submits a unit on from for node and returns the error reply.
func submitError(t *testing.T, from *procNode, members map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := from.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	res, err := cc.SubmitWork(ctx, members, strings.NewReader("payload\n"))
	var re *client.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("%s: submit %v: result %+v, error %v; want an ERROR reply", from.ID, members, res, err)
	}
	return re.Message
}

// TestBinarySignedWork checks signed work (docs/protocol.md §14.3): signed
// remote work both ways between upstream and our binary (work-signing on
// the submitter, work-verification + verifysignature on the executor), and
// an unsigned submit to a verifying node failing with upstream's text.
func TestBinarySignedWork(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	priv, pub := rsaKeyPair(t)
	work := []string{
		"--work-signing", "privatekey=" + priv, "tokenexpiration=10m",
		"--work-verification", "publickey=" + pub,
		"--work-command", "worktype=scat", "command=cat", "verifysignature=true",
	}
	var port int
	up1 := startListening(t, upBin, "up1", func() []string {
		port = freeTCPPort(t)
		return append(work[:len(work):len(work)], "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port))
	})
	obin := startProc(t, bin, "obin", append(work, "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port))...)
	obin.waitRoute("up1", "up1")
	up1.waitRoute("obin", "obin")

	signed := map[string]string{"worktype": "scat", "signwork": "true"}
	t.Run("signed-upstream-to-ours", func(t *testing.T) { remoteWorkWith(t, up1, "obin", signed) })
	t.Run("signed-ours-to-upstream", func(t *testing.T) { remoteWorkWith(t, obin, "up1", signed) })

	// Both implementations must produce the same text for the same
	// mistake, so upstream's own reply is the reference.
	const want = "could not parse response: ERROR: could not verify signature: signature is empty"
	t.Run("unsigned-rejected", func(t *testing.T) {
		unsigned := func(node string) map[string]string { return map[string]string{"node": node, "worktype": "scat"} }
		upGot := submitError(t, up1, unsigned("obin"))
		ourGot := submitError(t, obin, unsigned("up1"))
		if upGot != want || ourGot != want {
			t.Fatalf("unsigned submit to a verifying node:\n upstream→ours: %q\n ours→upstream: %q\n want:          %q", upGot, ourGot, want)
		}
		t.Logf("PASS unsigned submit to a verifying node fails both ways with %q", want)
	})
}
