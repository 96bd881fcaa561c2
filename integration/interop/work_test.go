package interop

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

type workStatus struct {
	State      int
	StateName  string
	Detail     string
	StdoutSize int64
}

// remoteWork submits a "cat" unit on from for node, waits until it succeeds
// and checks that its results are the payload (docs/protocol.md §14.1, §14.2).
func remoteWork(t *testing.T, from *procNode, node string) {
	t.Helper()
	remoteWorkWith(t, from, node, map[string]string{"worktype": "cat"})
}

// remoteWorkWith is remoteWork with extra submit members (worktype,
// signwork, ...).
func remoteWorkWith(t *testing.T, from *procNode, node string, members map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	payload := fmt.Sprintf("hello from %s to %s\n%s\n", from.ID, node, strings.Repeat("x", 100000))
	cc, err := from.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]string{"node": node}
	for k, v := range members {
		req[k] = v
	}
	res, err := cc.SubmitWork(ctx, req, strings.NewReader(payload))
	cc.Close()
	if err != nil {
		t.Fatalf("%s: work submit to %s: %v", from.ID, node, err)
	}
	if res.UnitID == "" || (res.Result != "Job Started" && res.Result != "Job Submitted") {
		t.Fatalf("%s: work submit to %s: %+v", from.ID, node, res)
	}
	var st workStatus
	testkit.Eventually(t, 45*time.Second, fmt.Sprintf("remote unit %s on %s succeeds", res.UnitID, from.ID), func() error {
		if err := from.Command("work status "+res.UnitID, &st); err != nil {
			return err
		}
		if st.StateName == "Succeeded" && st.StdoutSize == int64(len(payload)) {
			return nil
		}
		return fmt.Errorf("%+v", st)
	})
	cc, err = from.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	r, err := cc.Results(ctx, res.UnitID, 0)
	if err != nil {
		t.Fatalf("%s: work results %s: %v", from.ID, res.UnitID, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: reading results of %s: %v", from.ID, res.UnitID, err)
	}
	if string(got) != payload {
		t.Fatalf("%s: results of %s: %d bytes, want %d (equal prefix %v)", from.ID, res.UnitID, len(got), len(payload),
			strings.HasPrefix(payload, string(got)))
	}
	t.Logf("PASS remote work %s → %s: unit %s %s, %d result bytes exact", from.ID, node, res.UnitID, st.StateName, len(got))
}

// TestBinaryRemoteWork checks remote work (docs/protocol.md §14) between
// implementations: upstream submits work to our binary and ours to
// upstream, over a direct link and through a relay node of the other kind.
func TestBinaryRemoteWork(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	var port int
	work := []string{"--work-command", "worktype=cat", "command=cat"}
	up1 := startListening(t, upBin, "up1", func() []string {
		port = freeTCPPort(t)
		return append(work[:len(work):len(work)], "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port))
	})
	peer := fmt.Sprintf("address=127.0.0.1:%d", port)
	obin1 := startProc(t, bin, "obin1", append(work, "--tcp-peer", peer)...)
	obin2 := startProc(t, bin, "obin2", append(work, "--tcp-peer", peer)...)
	obin1.waitRoute("obin2", "up1")
	obin2.waitRoute("obin1", "up1")
	up1.waitRoute("obin1", "obin1")

	t.Run("upstream-to-ours", func(t *testing.T) { remoteWork(t, up1, "obin1") })
	t.Run("ours-to-upstream", func(t *testing.T) { remoteWork(t, obin1, "up1") })
	t.Run("ours-to-ours-via-upstream", func(t *testing.T) { remoteWork(t, obin1, "obin2") })
}
