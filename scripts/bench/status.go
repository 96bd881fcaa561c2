package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/receptor-mesh/receptor/services/meshclient"
)

// statusSection times gRPC GetStatus over the unix socket of one idle
// all-in-one node (one listener, a control service, three work types),
// starting statusSettle after the node answered, so that the figure is
// the steady state and not start-up (the runtime's first GCs, the
// start-up memory trim of services/internal/memtrim at 2 s). It runs
// statusRounds rounds of o.samples calls and prints each round's p50/p99.
func statusSection(ctx context.Context, o options, ps *ports, dir string, rep *report) {
	const (
		statusSettle = 3 * time.Second
		statusRounds = 3
	)
	port, err := ps.next()
	if err != nil {
		rep.failed("status", "GetStatus", err)
		return
	}
	d := filepath.Join(dir, "status1")
	sock := filepath.Join(dir, "status1g.sock")
	args := []string{"--node", "id=status1", "datadir=" + d,
		"--tcp-listener", "port=" + strconv.Itoa(port), "bindaddr=127.0.0.1",
		"--control-service", "service=control", "filename=" + filepath.Join(dir, "status1.sock"),
		"--grpc-server", "filename=" + sock,
		"--work-command", "worktype=a", "command=cat",
		"--work-command", "worktype=b", "command=cat",
		"--work-command", "worktype=c", "command=cat"}
	p, err := startProc(o.logger, filepath.Join(o.binDir, "receptor"), "status1", dir, args, nil)
	if err != nil {
		rep.failed("status", "GetStatus", err)
		return
	}
	defer p.stop()
	cc, err := grpcUnix(sock)
	if err != nil {
		rep.failed("status", "GetStatus", err)
		return
	}
	defer cc.Close()
	c := meshclient.New(cc)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitFor(sctx, "status node up", p, func(ctx context.Context) bool {
		_, err := c.Status(ctx)
		return err == nil
	}); err != nil {
		rep.failed("status", "GetStatus", err)
		return
	}
	time.Sleep(statusSettle)
	var vals, p99s []string
	ok := true
	for range statusRounds {
		st, err := statusSamples(sctx, c, o.samples)
		if err != nil {
			rep.failed("status", "GetStatus", err)
			return
		}
		vals = append(vals, ms(percentile(st, 50))+" / "+ms(percentile(st, 99)))
		p99s = append(p99s, ms(percentile(st, 99)))
		ok = ok && percentile(st, 99) < time.Millisecond
	}
	rep.add(row{Group: "status", Name: fmt.Sprintf("gRPC GetStatus over unix socket, idle node, p50 / p99 (%d rounds of %d)", statusRounds, o.samples),
		Value: fmt.Sprint(vals), Target: "p99 < 1 ms", Verdict: verdict(ok)})
}
