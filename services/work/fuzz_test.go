package work

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/work/signing"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// FuzzRemoteStatusReply applies arbitrary `work status` replies of a remote
// node (docs/protocol.md §14.2) to a local remote unit, as the status loop
// does. The reply is head + mid×repeat + tail, so that short inputs can
// make the long replies a peer may send (up to client.MaxPeerReplyBytes).
// Whatever the peer says, the local unit stays readable and reportable and
// keeps its work type and ExtraData (the remote node, unit ID and params
// are ours); an "ERROR" reply ends monitoring, failing the unit only for
// "unknown work unit"; a JSON status is copied (State, StdoutSize, Detail
// up to maxRemoteDetail); anything else ends monitoring and changes
// nothing. One agent and one unit serve all inputs.
func FuzzRemoteStatusReply(f *testing.F) {
	f.Add(`{"State":2,"Detail":"exit status 0","StdoutSize":0}`, "", "", uint16(0))
	f.Add(`{"State":1,"Detail":"Running","StdoutSize":12,"WorkType":"x","ExtraData":{"RemoteNode":"evil"}}`, "", "", uint16(0))
	f.Add(`{"State":4,"StdoutSize":-1}`, "", "", uint16(0))
	f.Add(`{"State":"2"}`, "", "", uint16(0))
	f.Add("ERROR: unknown work unit abc\n", "", "", uint16(0))
	f.Add("ERROR: permission denied\n", "", "", uint16(0))
	f.Add(`{"State":99,"Detail":"`, `\u00e9<`, `"}`, uint16(300))
	f.Add("not json", "", "", uint16(0))

	a, err := New(Options{NodeID: "nodea", DataDir: f.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	extra, err := json.Marshal(remoteExtra{RemoteNode: "nodeb", RemoteWorkType: "cat",
		RemoteParams: map[string]string{"secret_x": "s"}, RemoteUnitID: "remote1", RemoteStarted: true})
	if err != nil {
		f.Fatal(err)
	}
	e, err := a.allocate(RemoteWorkType, extra)
	if err != nil {
		f.Fatal(err)
	}
	r := &remoteUnit{a: a, e: e}
	e.remote = r

	f.Fuzz(func(t *testing.T, head, mid, tail string, repeat uint16) {
		if len(head)+len(mid)*int(repeat)+len(tail) > client.MaxPeerReplyBytes {
			return
		}
		line := head + strings.Repeat(mid, int(repeat)) + tail
		before := unit.Status{State: unit.Running, Detail: "Running", WorkType: RemoteWorkType, ExtraData: extra}
		if err := e.dir.Overwrite(before); err != nil {
			t.Fatal(err)
		}
		failures := 0
		done := r.applyStatus(line, &failures)

		st, err := e.dir.ReadStatus()
		if err != nil {
			t.Fatalf("the unit is unreadable after a %d-byte reply: %v", len(line), err)
		}
		rep, err := a.Status(e.id)
		if err != nil || rep.StateName != st.State.Name() {
			t.Fatalf("Status after the reply = %+v, %v", rep, err)
		}
		if st.WorkType != RemoteWorkType || !bytes.Equal(st.ExtraData, extra) {
			t.Fatalf("the reply changed the unit's own records: %q, %s", st.WorkType, st.ExtraData)
		}
		var rs struct {
			State      unit.State
			Detail     string
			StdoutSize int64
		}
		switch {
		case strings.HasPrefix(line, "ERROR"):
			want := before
			if strings.Contains(line, "unknown work unit") {
				want.State, want.Detail = unit.Failed, "Remote work unit is gone"
			}
			if !done || st.State != want.State || st.Detail != want.Detail {
				t.Fatalf("error reply: done %v, status %v %q; want %v %q", done, st.State, st.Detail, want.State, want.Detail)
			}
		case json.Unmarshal([]byte(line), &rs) == nil:
			keptAll := len(rs.Detail) <= maxRemoteDetail && st.Detail == rs.Detail
			cut := len(rs.Detail) > maxRemoteDetail && strings.HasPrefix(rs.Detail, st.Detail) &&
				len(st.Detail) <= maxRemoteDetail && len(st.Detail) > maxRemoteDetail-utf8.UTFMax
			if st.State != rs.State || st.StdoutSize != rs.StdoutSize || !keptAll && !cut {
				t.Fatalf("status reply copied as %v %d %d-byte detail; sent %v %d %d-byte detail",
					st.State, st.StdoutSize, len(st.Detail), rs.State, rs.StdoutSize, len(rs.Detail))
			}
			wantDone := (rs.State.Complete() || rs.State == unit.Canceled) && rs.StdoutSize <= 0
			if done != wantDone {
				t.Fatalf("status %v (%d bytes of stdout) ends monitoring: %v, want %v", rs.State, rs.StdoutSize, done, wantDone)
			}
		default:
			if !done || st.State != before.State || st.Detail != before.Detail || st.StdoutSize != 0 {
				t.Fatalf("unparsable reply: done %v, status %v %q %d", done, st.State, st.Detail, st.StdoutSize)
			}
		}
	})
}

// FuzzSignatureRule drives the agent's signature rule (docs/protocol.md
// §14.3, the check every signed request passes) with tokens from a real
// signer, tokens for another node and arbitrary text: unsigned types
// refuse any signature with upstream's text, trusted callers need none,
// and otherwise the verdict is the verifier's, returned as an ErrSignature
// error with the verifier's exact text.
func FuzzSignatureRule(f *testing.F) {
	dir := f.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	priv, pub := filepath.Join(dir, "sign.pem"), filepath.Join(dir, "verify.pem")
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600) != nil ||
		os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600) != nil {
		f.Fatal("writing keys")
	}
	signer, err := signing.NewSigner(priv, 0)
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := signing.NewVerifier(pub, 0)
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(Options{NodeID: "nodea", DataDir: filepath.Join(dir, "data"), Verifier: verifier,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	good, err := signer.Sign("nodea")
	if err != nil {
		f.Fatal(err)
	}
	// A token for another node is refused whether or not it expired.
	other, err := signer.Sign("nodeb")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "x", good[:len(good)-2], good + "x", strings.Replace(good, ".", "..", 1)} {
		for mode := range uint8(8) {
			f.Add(mode, s)
		}
	}
	f.Fuzz(func(t *testing.T, mode uint8, text string) {
		needs, trusted := mode&1 != 0, mode&2 != 0
		// Tokens live minutes, campaigns longer: sign afresh.
		good, err := signer.Sign("nodea")
		if err != nil {
			t.Fatal(err)
		}
		token := text
		switch mode >> 2 % 4 {
		case 1:
			token = good
		case 2:
			token = other
		case 3:
			token = good + text
		}
		err = a.checkSignature(needs, Auth{Signature: token, Trusted: trusted})
		switch {
		case !needs && token != "":
			if err != errUnexpectedSignature {
				t.Fatalf("unsigned type with a signature: %v", err)
			}
		case !needs, trusted:
			if err != nil {
				t.Fatalf("needs %v, trusted %v: %v", needs, trusted, err)
			}
		default:
			verr := verifier.Verify(token, "nodea")
			if (err == nil) != (verr == nil) {
				t.Fatalf("token %q: rule %v, verifier %v", token, err, verr)
			}
			if err != nil && (!errors.Is(err, ErrSignature) || err.Error() != verr.Error()) {
				t.Fatalf("token %q: rule error %q, want ErrSignature %q", token, err, verr)
			}
			if token == good && err != nil {
				t.Fatalf("the signer's own token for this node was refused: %v", err)
			}
		}
	})
}
