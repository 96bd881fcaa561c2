package mesh

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestTransitForwardsBytesUnchanged: a transit node forwards a data message
// with exactly the bytes a re-encode would give (upstream re-marshals):
// HopsToLive decremented, reserved bytes zeroed, everything else as
// received (hashes, NUL-padded services with an embedded NUL, payload).
// The transit path patches the received message in place, so this golden
// test guards the wire.
func TestTransitForwardsBytesUnchanged(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	x, y := m.rawDial("a", "x"), m.rawDial("a", "y")
	for _, p := range []*rawPeer{x, y} {
		p.next(wire.TypeRoute)
		p.sendRoute(map[string]float64{"a": 1})
	}
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		rt := a.Status().RoutingTable
		if rt["x"] == "x" && rt["y"] == "y" {
			return nil
		}
		return errors.New("routes of a")
	})
	in := unhex(t, `00 07 ab cd  9c4cc16dd07eeca1  8b6ced1ee9bcb74c
		73 00 76 00 00 00 00 00  74 6f 73 65 72 76 69 63  70 61 79 6c 6f 61 64`)
	want := unhex(t, `00 06 00 00  9c4cc16dd07eeca1  8b6ced1ee9bcb74c
		73 00 76 00 00 00 00 00  74 6f 73 65 72 76 69 63  70 61 79 6c 6f 61 64`)
	x.send(in)
	if got := y.next(wire.TypeData); !bytes.Equal(got, want) {
		t.Fatalf("forwarded\n%x\nwant\n%x", got, want)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
