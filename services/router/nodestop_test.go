package router

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// TestRunEndsWhenNodeStopsOnItsOwn: a mesh node that stops by itself (a
// duplicate node ID, or any other fatal mesh error) makes Run return an
// error instead of serving on without a mesh; Close of a healthy router
// still returns nil.
func TestRunEndsWhenNodeStopsOnItsOwn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
	}{
		{"duplicate", mesh.ErrDuplicateNodeID},
		{"other", errors.New("some fatal mesh error")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			sock := filepath.Join(dir, "ctl.sock")
			cfg, err := config.ParseArgs([]string{"--node", "id=a", "datadir=" + filepath.Join(dir, "data"),
				"--local-only", "--control-service", "filename=" + sock}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := New(cfg, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			waitControlSocket(t, &node{ctlSock: sock})
			r.Node().Abort(tc.cause)
			select {
			case err := <-done:
				if !errors.Is(err, tc.cause) || !strings.Contains(err.Error(), "mesh node") {
					t.Fatalf("Run = %v, want an error wrapping %v", err, tc.cause)
				}
			case <-time.After(bound):
				t.Fatal("Run still serving after the mesh node stopped")
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		n := startNode(t, nodeSpec{id: "b"})
		if err := n.stop(); err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	})
}
