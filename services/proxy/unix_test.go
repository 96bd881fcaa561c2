//go:build unix

package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestUnixSocketProxy(t *testing.T) {
	n1, _, n3 := newChain(t)
	dir := t.TempDir()
	targetPath := filepath.Join(dir, "target.sock")
	ln, err := net.Listen("unix", targetPath)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, echo)

	cl, err := NewUnixSocketClient(n3, nil, config.UnixSocketClient{Service: "sock", Filename: targetPath}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, cl)
	path := filepath.Join(dir, "proxy.sock")
	// A stale file of that name is replaced.
	if err := os.WriteFile(path, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.UnixSocketServer{Filename: path, Permissions: 0o660, RemoteNode: "node3", RemoteService: "sock"}
	srv, err := NewUnixSocketServer(n1, nil, cfg, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want srw-rw----", st.Mode())
	}
	if st, err := os.Stat(path + ".lock"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v; want mode 0600", st, err)
	}

	// A second proxy on the same file fails at startup.
	again, err := NewUnixSocketServer(n1, nil, cfg, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if wait, err := again.Start(testCtx(t)); err == nil {
		wait()
		t.Fatal("second unix-socket-server on the same file started")
	}

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := pattern(300<<10, 5)
	go func() {
		_, _ = c.Write(data)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: %d bytes, %v; want %d bytes back", len(got), err, len(data))
	}

	want := map[string]string{"filename": targetPath, "type": "Unix Proxy"}
	testkit.Eventually(t, bound, "node1 sees node3's sock advertised with ConnType 1 and the Unix Proxy tags", func() error {
		for _, ad := range n1.Status().Advertisements {
			if ad.NodeID == "node3" && ad.Service == "sock" {
				if ad.ConnType == mesh.ConnTypeStream && maps.Equal(ad.Tags, want) {
					return nil
				}
				return fmt.Errorf("advertised with ConnType %d, tags %v", ad.ConnType, ad.Tags)
			}
		}
		return errors.New("no such advertisement yet")
	})
}

// Stopping releases the lock, so the same file can be served again.
func TestUnixSocketServerRestart(t *testing.T) {
	n1, _, _ := newChain(t)
	cfg := config.UnixSocketServer{Filename: filepath.Join(t.TempDir(), "p.sock"), Permissions: 0o600,
		RemoteNode: "node3", RemoteService: "sock"}
	for i := range 2 {
		srv, err := NewUnixSocketServer(n1, nil, cfg, Options{Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		wait, err := srv.Start(ctx)
		if err != nil {
			cancel()
			t.Fatalf("start %d: %v", i, err)
		}
		cancel()
		wait()
	}
}
