package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// ourBin is our receptor binary: $RECEPTOR_BIN_DIR/receptor, else
// ../../bin/receptor (make build); the test is skipped without one.
func ourBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RECEPTOR_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin")
	}
	bin, err := filepath.Abs(filepath.Join(dir, "receptor"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		skipTest(t, fmt.Sprintf("our receptor binary is not built (%v); run make build or set RECEPTOR_BIN_DIR", err))
	}
	return bin
}

// controlOverMesh asks from's control service to connect to node's "control"
// service over the mesh and returns the remote status, proving the stream path
// and the remote control service end to end.
func controlOverMesh(t *testing.T, from *procNode, node string) ctlStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := from.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c, err := cc.Connect(ctx, node, "control", "")
	if err != nil {
		t.Fatalf("%s: connect %s control: %v", from.ID, node, err)
	}
	remote, err := client.NewConn(ctx, c)
	if err != nil {
		t.Fatalf("%s: greeting of %s over the mesh: %v", from.ID, node, err)
	}
	if remote.NodeID() != node {
		t.Fatalf("%s: connect %s control greets as %q", from.ID, node, remote.NodeID())
	}
	raw, err := remote.Command(ctx, `{"command":"status"}`)
	if err != nil {
		t.Fatalf("%s: status of %s over the mesh: %v", from.ID, node, err)
	}
	var s ctlStatus
	if err := json.Unmarshal(raw, &s); err != nil || s.NodeID != node {
		t.Fatalf("%s: status of %s over the mesh: %s (%v)", from.ID, node, raw, err)
	}
	t.Logf("PASS %s: connect %s control → greeting and status over the mesh", from.ID, node)
	return s
}

// waitUpAd waits until p's status lists node:service with connType.
func (p *procNode) waitAd(node, service string, connType int) {
	p.t.Helper()
	testkit.Eventually(p.t, adTimeout, fmt.Sprintf("%s lists the ad %s:%s", p.ID, node, service), func() error {
		s, err := p.Status()
		if err != nil {
			return err
		}
		a, ok := s.Ad(node, service)
		if ok && a.ConnType == connType {
			return nil
		}
		return fmt.Errorf("%+v", s.Advertisements)
	})
}

// TestBinaryUpstreamOursUpstream runs our binary as the middle of
// up1 - obin - up2 (plain tcp to up1, tcp+tls to up2), all real processes.
func TestBinaryUpstreamOursUpstream(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	var plain, secure int
	obin := startListening(t, bin, "obin", func() []string {
		plain, secure = freeTCPPort(t), freeTCPPort(t)
		return append(pki.UpstreamTLSArgs(t, "obin"),
			"--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(plain),
			"--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(secure), "tls=srv", "cost=2")
	})
	up1 := startProc(t, upBin, "up1", "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", plain))
	up2 := startProc(t, upBin, "up2", append(pki.UpstreamTLSArgs(t, "up2"),
		"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", secure), "tls=cli", "cost=2")...)

	obin.waitConnected("up1", 1)
	obin.waitConnected("up2", 2)
	up2.waitConnected("obin", 2)
	up1.waitRoute("up2", "obin")
	up2.waitRoute("up1", "obin")
	t.Log("PASS routes converge through our binary (tcp and tcp+tls with cost 2)")

	upPing(t, up1, "up2")
	upPing(t, up2, "up1")
	upPing(t, obin, "up1")
	upPing(t, obin, "up2")
	upTraceroute(t, up1, "up2", "up1,obin,up2")
	upTraceroute(t, obin, "up2", "obin,up2")

	controlOverMesh(t, up1, "obin")
	controlOverMesh(t, obin, "up2")
	controlOverMesh(t, up1, "up2") // streams transit our binary

	obin.waitAd("up1", "control", 1)
	up1.waitAd("obin", "control", 1)
	t.Log("PASS control service ads exchanged between our binary and upstream")
}

// TestBinaryOursUpstreamOurs runs upstream as the middle of
// obin1 - up1 - obin2 (udp and websocket), all real processes.
func TestBinaryOursUpstreamOurs(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	var udp, ws int
	up1 := startListening(t, upBin, "up1", func() []string {
		udp, ws = freeUDPPort(t), freeTCPPort(t)
		return []string{"--udp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(udp),
			"--ws-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(ws), "path=/mesh"}
	})
	obin1 := startProc(t, bin, "obin1", "--udp-peer", fmt.Sprintf("address=127.0.0.1:%d", udp))
	obin2 := startProc(t, bin, "obin2", "--ws-peer", fmt.Sprintf("address=ws://127.0.0.1:%d/mesh", ws))

	obin1.waitRoute("obin2", "up1")
	obin2.waitRoute("obin1", "up1")
	up1.waitConnected("obin1", 1)
	up1.waitConnected("obin2", 1)
	t.Log("PASS routes converge through upstream (udp and ws)")

	upPing(t, obin1, "obin2")
	upPing(t, obin2, "obin1")
	upPing(t, up1, "obin1")
	upTraceroute(t, obin1, "obin2", "obin1,up1,obin2")
	upTraceroute(t, obin2, "obin1", "obin2,up1,obin1")

	controlOverMesh(t, obin1, "obin2") // streams transit upstream
	controlOverMesh(t, up1, "obin1")
	controlOverMesh(t, obin2, "up1")
	up1.waitAd("obin1", "control", 1)
	obin2.waitAd("up1", "control", 1)
	t.Log("PASS control service ads exchanged between our binaries and upstream")
}
