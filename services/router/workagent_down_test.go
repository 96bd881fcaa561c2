package router

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/workapi"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// TestWorkAgentDownWithdrawsWorkTypes: a router whose work agent runs in a
// process of its own (Options.WorkConn) withdraws the agent's work types
// from its control-service advertisement as soon as the agent goes away,
// and advertises them again when it is back.
func TestWorkAgentDownWithdrawsWorkTypes(t *testing.T) {
	wa := startWorkAgent(t, "wd", "")
	sock := filepath.Join(shortDir(t), "worker.sock")
	serve := func() (stop func()) {
		ln, err := grpcserve.ListenUnix(sock, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpcserve.New(grpcserve.Options{Logger: testLogger(t)})
		workv1.RegisterWorkServiceServer(srv, workapi.New(wa.agent, "9.9.9", nil))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- grpcserve.Serve(ctx, srv, ln) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serving the work agent: %v", err)
			}
		}
	}
	stopAgent := serve()
	store, err := tlsconf.NewStore("wd", nil, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialWorkAgent(store, &config.WorkAgent{Address: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := startNode(t, nodeSpec{id: "wd",
		opts: Options{Work: workv1.NewWorkServiceClient(conn), WorkConn: conn}})

	types := func() []string {
		var out []string
		for _, wc := range n.r.Node().WorkCommands() {
			out = append(out, wc.WorkType)
		}
		return out
	}
	advertised := func() []mesh.WorkCommand {
		for _, ad := range n.r.Node().Status().Advertisements {
			if ad.NodeID == "wd" && ad.Service == "control" {
				return ad.WorkCommands
			}
		}
		return nil
	}
	want := []string{"cat", "echo", "sleep", "secure"} // testWorkTypes
	testkit.Eventually(t, bound, "work types advertised", func() error {
		if got := types(); !slices.Equal(got, want) || len(advertised()) != len(want) {
			return fmt.Errorf("work types %v, advertised %v", got, advertised())
		}
		return nil
	})

	stopAgent()
	start := time.Now()
	testkit.Eventually(t, bound, "work types withdrawn", func() error {
		if got := types(); len(got) != 0 || advertised() != nil {
			return fmt.Errorf("work types %v, advertised %v", got, advertised())
		}
		return nil
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("work types withdrawn %v after the agent stopped, want < 3 s", took)
	}

	stopAgent = serve()
	defer stopAgent()
	testkit.Eventually(t, bound, "work types advertised again", func() error {
		if got := types(); !slices.Equal(got, want) || len(advertised()) != len(want) {
			return fmt.Errorf("work types %v, advertised %v", got, advertised())
		}
		return nil
	})
}
