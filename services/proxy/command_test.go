package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestCommandService runs a command-service on node3 and reaches it from
// node1: the command's terminal output arrives, the connection ends when
// the command exits, an interactive command answers input, and the
// service is advertised as upstream's.
func TestCommandService(t *testing.T) {
	n1, _, n3 := newChain(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "greet.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf 'hello from %s\\n' \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	greet, err := NewCommandService(n3, nil, config.CommandService{Service: "greet", Command: script + " 'the mesh'"}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, greet)
	cat, err := NewCommandService(n3, nil, config.CommandService{Service: "cat", Command: "cat"}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, cat)

	// The command's output, through the terminal (\r\n), then the end.
	c, err := stream.Dial(ctx, n1, "node3", "greet", stream.DialOptions{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(bound))
	out, err := io.ReadAll(c)
	_ = c.Close()
	if err != nil || string(out) != "hello from the mesh\r\n" {
		t.Errorf("greet: %q, %v", out, err)
	}

	// Interactive: a line sent is echoed by the terminal and by cat; the
	// peer's close hangs the command up.
	c, err = stream.Dial(ctx, n1, "node3", "cat", stream.DialOptions{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(bound))
	br := bufio.NewReader(c)
	for _, want := range []string{"ping\r\n", "ping\r\n"} {
		line, err := br.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("cat: line %q, %v; want %q", line, err, want)
		}
	}
	_ = c.Close()

	want := map[string]string{"type": "Command Service"}
	testkit.Eventually(t, bound, "node1 sees node3's command services advertised", func() error {
		for _, ad := range n1.Status().Advertisements {
			if ad.NodeID == "node3" && ad.Service == "cat" {
				if ad.ConnType == mesh.ConnTypeStream && maps.Equal(ad.Tags, want) {
					return nil
				}
				return fmt.Errorf("advertised with ConnType %d, tags %v", ad.ConnType, ad.Tags)
			}
		}
		return errors.New("no advertisement yet")
	})
}

func TestCommandServiceConfigErrors(t *testing.T) {
	n1, _, _ := newChain(t)
	for _, tc := range []struct {
		cfg  config.CommandService
		want string
	}{
		{config.CommandService{Service: "s", Command: ""}, "command-service s: command is empty"},
		{config.CommandService{Service: "s", Command: "echo 'unclosed"}, "command-service s: command"},
		{config.CommandService{Service: "waytoolongname", Command: "true"}, "must be 1 to 8 bytes"},
		{config.CommandService{Service: "s", Command: "true", TLS: "nosuch"}, "nosuch"},
	} {
		_, err := NewCommandService(n1, nil, tc.cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
