package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestRouterStartsProxies: a tcp-server entity is served by the router, as
// receptorctl's pytest mesh relies on (tcp-server port 11112 into the node's
// own control service).
func TestRouterStartsProxies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "rtp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	args := []string{
		"--node", "id=proxynode", "datadir=" + filepath.Join(dir, "data"),
		"--local-only",
		"--control-service", "filename=" + filepath.Join(dir, "ctl.sock"),
		"--tcp-server", "port=" + strconv.Itoa(port), "bindaddr=127.0.0.1",
		"remotenode=localhost", "remoteservice=control",
	}
	cfg, err := config.ParseArgs(args, nil)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	r, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// The proxy binds during start-up; poll until it accepts (failure bound only).
	var conn net.Conn
	testkit.Eventually(t, bound, fmt.Sprintf("tcp-server port %d accepting", port), func() error {
		conn, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		return err
	})
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading greeting through tcp-server: %v", err)
	}
	if want := "Receptor Control, node proxynode\n"; got != want {
		t.Fatalf("greeting through tcp-server = %q, want %q", got, want)
	}
}
