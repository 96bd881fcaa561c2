package interop

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestAdvertisements checks docs/protocol.md §7 between implementations: our
// advertisements appear in upstream's status with the right ConnType and
// Tags, a closed service is withdrawn there, and upstream's control service
// ad (with its work commands) reaches us. Upstream advertises only every
// 60 s, so this is the one slow test; it runs in parallel with the others.
func TestAdvertisements(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	var port int
	up1 := startListening(t, bin, "up1", func() []string {
		port = freeTCPPort(t)
		return []string{"--tcp-listener", "bindaddr=127.0.0.1", fmt.Sprintf("port=%d", port),
			"--work-command", "worktype=echo", "command=cat"}
	})
	ours := newOurNode(t, "ours")
	ours.DialTCP(fmt.Sprintf("127.0.0.1:%d", port), nil, mesh.BackendOptions{})
	ours.waitConnected("up1", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streamTags := map[string]string{"type": "Echo Service", "note": "<&>"}
	ln, err := stream.Listen(ctx, ours, "oecho", stream.ListenOptions{Advertise: true, Tags: streamTags, Logger: ours.log})
	if err != nil {
		t.Fatalf("stream.Listen oecho: %v", err)
	}
	defer ln.Close()
	dgramTags := map[string]string{"type": "Datagram"}
	pc, err := ours.ListenPacketAndAdvertise("odgram", mesh.ServiceAd{ConnType: mesh.ConnTypeDatagram, Tags: dgramTags})
	if err != nil {
		t.Fatalf("ListenPacketAndAdvertise odgram: %v", err)
	}
	defer pc.Close()

	waitUpAd := func(service string, connType int, tags map[string]string) {
		t.Helper()
		testkit.Eventually(t, adTimeout, "up1 lists our ad "+service, func() error {
			s, err := up1.Status()
			if err != nil {
				return err
			}
			a, ok := s.Ad("ours", service)
			if ok && a.ConnType == connType && maps.Equal(a.Tags, tags) {
				return nil
			}
			return fmt.Errorf("%+v", s.Advertisements)
		})
		t.Logf("PASS up1 lists ours:%s with ConnType %d and tags %v", service, connType, tags)
	}
	waitUpAd("oecho", 1, streamTags)
	waitUpAd("odgram", 0, dgramTags)

	// Withdrawal: closing the listener floods a Cancel.
	if err := ln.Close(); err != nil {
		t.Fatalf("closing oecho: %v", err)
	}
	testkit.Eventually(t, convergeTimeout, "up1 drops our withdrawn ad oecho", func() error {
		s, err := up1.Status()
		if err != nil {
			return err
		}
		_, ok := s.Ad("ours", "oecho")
		if !ok {
			return nil
		}
		return fmt.Errorf("%+v", s.Advertisements)
	})
	t.Log("PASS up1 drops ours:oecho after our Cancel")

	a := ours.waitAd("up1", "control", adTimeout)
	if a.ConnType != mesh.ConnTypeStream || a.Tags["type"] != "Control Service" ||
		len(a.WorkCommands) != 1 || a.WorkCommands[0] != (mesh.WorkCommand{WorkType: "echo", Secure: false}) {
		t.Fatalf("upstream's control ad as we hold it: %+v", a)
	}
	t.Logf("PASS our status holds up1:control: %+v", a)
}
