package workapi

import (
	"context"
	"io"
	"log/slog"
	"testing"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// TestOriginTrust: a caller's claim that a request is local (its work
// signature need not be verified) is believed only from the node's own
// router; from anyone else the request is treated as remote.
func TestOriginTrust(t *testing.T) {
	policy, err := authz.New(authz.Options{SelfNodeID: "nodea", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{policy: policy}
	local := workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL
	for _, tc := range []struct {
		caller authz.Principal
		want   bool
	}{
		{authz.Internal, true},
		{authz.Principal{Kind: authz.KindUnix, Name: "0"}, true},
		{authz.Principal{Kind: authz.KindCert, Name: "nodea"}, true},
		{authz.Principal{Kind: authz.KindCert, Name: "nodeb"}, false},
		{authz.Principal{Kind: authz.KindToken, Name: "http-gateway"}, false},
		{authz.Anonymous, false},
	} {
		ctx := authz.NewContext(context.Background(), tc.caller)
		if got := s.auth(ctx, "", local).Trusted; got != tc.want {
			t.Errorf("%s claiming a local origin: trusted %v, want %v", tc.caller, got, tc.want)
		}
		if s.auth(ctx, "", workv1.RequestOrigin_REQUEST_ORIGIN_REMOTE).Trusted {
			t.Errorf("%s: a remote origin was trusted", tc.caller)
		}
	}
	// signwork needs the admin role.
	if err := s.maySign(authz.NewContext(context.Background(), authz.Principal{Kind: authz.KindNode, Name: "b"}), true); err == nil {
		t.Error("a mesh node may have work signed")
	}
	if err := s.maySign(authz.NewContext(context.Background(), authz.Internal), true); err != nil {
		t.Errorf("the router may not have work signed: %v", err)
	}
}
