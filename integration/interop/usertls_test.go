package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// statusOverMesh asks from's control service to connect to node's service
// (a control service) with the named tls-client ("" = none) and returns the
// remote status, or the first error on the way.
func statusOverMesh(from *procNode, node, service, tlsName string) (ctlStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := from.Dial(ctx)
	if err != nil {
		return ctlStatus{}, err
	}
	defer cc.Close()
	c, err := cc.Connect(ctx, node, service, tlsName)
	if err != nil {
		return ctlStatus{}, fmt.Errorf("%s: connect %s %s %s: %w", from.ID, node, service, tlsName, err)
	}
	remote, err := client.NewConn(ctx, c)
	if err != nil {
		return ctlStatus{}, fmt.Errorf("%s: greeting of %s:%s over the mesh: %w", from.ID, node, service, err)
	}
	raw, err := remote.Command(ctx, `{"command":"status"}`)
	if err != nil {
		return ctlStatus{}, fmt.Errorf("%s: status of %s:%s over the mesh: %w", from.ID, node, service, err)
	}
	var s ctlStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		return ctlStatus{}, fmt.Errorf("%s: status of %s:%s: %s: %w", from.ID, node, service, raw, err)
	}
	return s, nil
}

// TestBinaryUserTLSStreams checks docs/protocol.md §9.3 and §10.3: control
// services with user TLS (ConnType 2) on upstream and on our binary, reached
// with a tls-client that verifies the target's node ID, both ways; and the
// negatives: a server certificate without the target's node ID, and a client
// certificate without the dialer's node ID against requireclientcert.
func TestBinaryUserTLSStreams(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	// Every node: tls-server srv / tls-client cli with its own certificate;
	// badsrv / badcli with a certificate of "someone" (names check
	// skipped); control services tctl (srv) and bctl (badsrv).
	args := func(id string) []string {
		cert, key := pki.Node(t, id)
		bad, badKey := pki.Node(t, "someone")
		return []string{
			"--tls-server", "name=srv", "cert=" + cert, "key=" + key, "requireclientcert=true", "clientcas=" + pki.CACert(),
			"--tls-server", "name=badsrv", "cert=" + bad, "key=" + badKey, "requireclientcert=true", "clientcas=" + pki.CACert(),
			"skipreceptornamescheck=true",
			"--tls-client", "name=cli", "cert=" + cert, "key=" + key, "rootcas=" + pki.CACert(),
			"--tls-client", "name=badcli", "cert=" + bad, "key=" + badKey, "rootcas=" + pki.CACert(),
			"skipreceptornamescheck=true",
			"--control-service", "service=tctl", "tls=srv",
			"--control-service", "service=bctl", "tls=badsrv",
		}
	}
	var port int
	up1 := startListening(t, upBin, "up1", func() []string {
		port = freeTCPPort(t)
		return append(args("up1"), "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port))
	})
	obin := startProc(t, bin, "obin", append(args("obin"), "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port))...)
	obin.waitRoute("up1", "up1")
	up1.waitRoute("obin", "obin")

	t.Run("ads-conntype-2", func(t *testing.T) {
		up1.waitAd("obin", "tctl", 2)
		obin.waitAd("up1", "tctl", 2)
		t.Log("PASS tls control services are advertised with ConnType 2 both ways")
	})
	pairs := []struct {
		name     string
		from     *procNode
		to       string
		toBinary string
	}{
		{"ours-to-upstream", obin, "up1", "upstream"},
		{"upstream-to-ours", up1, "obin", "ours"},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			s, err := statusOverMesh(p.from, p.to, "tctl", "cli")
			if err != nil || s.NodeID != p.to {
				t.Fatalf("tls stream %s → %s:tctl: status node %q, error %v", p.from.ID, p.to, s.NodeID, err)
			}
			t.Logf("PASS %s: connect %s tctl cli → greeting and status over user TLS", p.from.ID, p.to)

			// The server's certificate lacks the target's node ID: the
			// dialer refuses it.
			if _, err := statusOverMesh(p.from, p.to, "bctl", "cli"); err == nil {
				t.Fatalf("%s: connect %s bctl cli succeeded with a server certificate lacking %s", p.from.ID, p.to, p.to)
			} else {
				t.Logf("PASS %s server cert without the node ID is refused: %v", p.toBinary, err)
			}
			// The client's certificate lacks the dialer's node ID:
			// requireclientcert on the server refuses it.
			if _, err := statusOverMesh(p.from, p.to, "tctl", "badcli"); err == nil {
				t.Fatalf("%s: connect %s tctl badcli succeeded with a client certificate lacking %s", p.from.ID, p.to, p.from.ID)
			} else {
				t.Logf("PASS %s server refuses a client cert without the dialer's node ID: %v", p.toBinary, err)
			}
			// The session survives the failed handshakes.
			if s, err := statusOverMesh(p.from, p.to, "tctl", "cli"); err != nil || s.NodeID != p.to {
				t.Fatalf("tls stream after the failures: status node %q, error %v", s.NodeID, err)
			}
		})
	}
}
