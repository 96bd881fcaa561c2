package stream

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// TestDialNoRouteFailsFast: on a real node, dialing a node it has no route
// to fails at once with upstream's text (receptorctl `connect`, remote work
// "Job Submitted" without waiting) rather than after the handshake timeout.
func TestDialNoRouteFailsFast(t *testing.T) {
	node, err := mesh.New(mesh.Options{NodeID: "lone", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	// The bound is far below the 15 s handshake timeout, so a timeout
	// fails the test; it is a failure bound, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, node, "ghost", "control", DialOptions{})
	if err == nil {
		t.Fatal("Dial to a node without a route succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Dial waited for its context instead of failing: %v", err)
	}
	if !strings.HasSuffix(err.Error(), "no route to node") {
		t.Fatalf("Dial error %q, want it to end in %q", err, "no route to node")
	}
}
