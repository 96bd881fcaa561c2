package grpcserve

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// TestCheckHealth: SERVING while the server runs, an error for an unknown
// service and once the server has stopped, and the check passes the
// authorizer as a unix-socket peer (a policy that grants nothing else).
func TestCheckHealth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	policy, err := authz.New(authz.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Logger: quietLogger(), ShutdownTimeout: 50 * time.Millisecond, Policy: policy, Face: FaceUnix})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUnix(ctx, srv, path) }()

	callCtx, callCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer callCancel()
	var last error
	for range 200 {
		if last = CheckHealth(callCtx, "unix://"+path, ""); last == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("CheckHealth while serving: %v", last)
	}
	if err := CheckHealth(callCtx, "unix://"+path, "no.such.Service"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("CheckHealth of an unknown service: %v, want NotFound", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := CheckHealth(callCtx, "unix://"+path, ""); err == nil {
		t.Error("CheckHealth after stop succeeded")
	}
	if err := CheckHealth(callCtx, "10.0.0.1:9000", ""); err == nil || !strings.Contains(err.Error(), "TLS is required") {
		t.Errorf("CheckHealth of a plaintext non-loopback address: %v, want refusal", err)
	}
}
