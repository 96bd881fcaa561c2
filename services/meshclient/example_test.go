package meshclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/meshclient"
	"github.com/receptor-mesh/receptor/services/router"
)

// A program outside the router reaches the mesh through the router's gRPC
// API (MeshService) with net.Listener and net.Conn values. The router runs
// in-process here so the example is self-contained; normally it is a
// separate receptor or receptor-router process with a grpc-server entity,
// and the program only needs the socket path. Unix-socket callers are
// admin unless access entities say otherwise, so they may open mesh sockets.
func ExampleClient_Dial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dir, err := os.MkdirTemp("", "meshclient-example") // short: socket paths are limited
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")

	// The router: receptor-router --node id=router1 --local-only --grpc-server filename=SOCK
	cfg, err := config.ParseArgs([]string{
		"--node", "id=router1", "datadir=" + filepath.Join(dir, "data"),
		"--local-only",
		"--grpc-server", "filename=" + sock,
	}, nil)
	if err != nil {
		panic(err)
	}
	r, err := router.New(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	runCtx, stopRouter := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(runCtx) }()
	defer func() {
		stopRouter()
		if err := <-ran; err != nil {
			panic(err)
		}
	}()

	// The client side. Connecting is lazy and retried; WaitForReady makes
	// the first calls wait (bounded by ctx) until the router serves.
	conn, err := grpcserve.Dial("unix://"+sock, nil, grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	mc := meshclient.New(conn)

	// A service on the router's node, served by this program.
	ln, err := mc.Listen(ctx, "greeter", meshclient.ListenOptions{Advertise: true})
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		name, err := io.ReadAll(c) // to the dialer's half-close
		if err == nil {
			_, err = io.WriteString(c, "hello, "+string(name))
		}
		// After the peer's EOF, Close is orderly: it returns once the
		// router has delivered the reply.
		served <- errors.Join(err, c.Close())
	}()

	// Dial it as any mesh client would: by node ID and service name.
	c, err := mc.Dial(ctx, "router1", "greeter", meshclient.DialOptions{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "mesh\n"); err != nil {
		panic(err)
	}
	// Half-close, as with TCP: the listener reads EOF, and this side can
	// still read. Closing a Conn before the peer's EOF aborts the call
	// (like closing a socket with unread data), so both sides half-close
	// or read to EOF before Close.
	if err := c.(*meshclient.Conn).CloseWrite(); err != nil {
		panic(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		panic(err)
	}
	if err := <-served; err != nil {
		panic(err)
	}
	fmt.Print(string(reply))
	fmt.Println("from", c.RemoteAddr())

	// Output:
	// hello, mesh
	// from router1:greeter
}
