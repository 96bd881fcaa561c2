package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// The physical floor under a 2-hop ping: the same three processes and
// four loopback TCP transfers as node1 → node2 → node3 → node2 → node1,
// with nothing but copying in between. The driver sends a small message
// to a relay process, which passes it to an echo process, which sends it
// back the same way. `bench relay LISTEN TO` and `bench echo LISTEN` are
// those processes (the bench re-executes itself).

// relayMain serves one connection on args[0]: bytes are copied to and
// from a connection dialed to args[1] (relay), or back to the sender
// (echo, one argument).
func relayMain(args []string) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: bench relay LISTEN TO | bench echo LISTEN")
		return 2
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench relay:", err)
		return 1
	}
	c, err := ln.Accept()
	_ = ln.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench relay:", err)
		return 1
	}
	defer c.Close()
	if len(args) == 1 {
		_, _ = io.Copy(c, c)
		return 0
	}
	d, err := net.Dial("tcp", args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench relay:", err)
		return 1
	}
	defer d.Close()
	go func() { _, _ = io.Copy(d, c) }()
	_, _ = io.Copy(c, d)
	return 0
}

// rawRelayPing starts an echo and a relay process and times n round trips
// of a 64-byte message through them.
func rawRelayPing(ctx context.Context, o options, ps *ports, dir string, n int) ([]time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pe, err := ps.next()
	if err != nil {
		return nil, err
	}
	pr, err := ps.next()
	if err != nil {
		return nil, err
	}
	echoAddr, relayAddr := "127.0.0.1:"+strconv.Itoa(pe), "127.0.0.1:"+strconv.Itoa(pr)
	echo, err := startProc(o.logger, self, "raw-echo", dir, []string{"echo", echoAddr}, nil)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	relay, err := startProc(o.logger, self, "raw-relay", dir, []string{"relay", relayAddr, echoAddr}, nil)
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	var c net.Conn
	for {
		var d net.Dialer
		if c, err = d.DialContext(ctx, "tcp", relayAddr); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("raw relay: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	msg, back := make([]byte, 64), make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := range n + 10 { // the first 10 warm up
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, fmt.Errorf("raw relay: %w", err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return nil, fmt.Errorf("raw relay: %w", err)
		}
		if i >= 10 {
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}
