package client

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

// peer runs serve on the far end of a TCP loopback connection (TCP can
// half-close, as mesh streams do) and greets as node "nodeb".
func peer(t *testing.T, serve func(r *bufio.Reader, c net.Conn)) *Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "Receptor Control, node nodeb\n")
		serve(bufio.NewReader(c), c)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); <-done })
	c, err := Greet(context.Background(), conn, "nodeb")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if err != nil || got != want {
		t.Errorf("request = %q, %v; want %q", got, err, want)
	}
}

func TestGreetChecksNode(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go io.WriteString(b, "Receptor Control, node other\n")
	_, err := Greet(context.Background(), a, "nodeb")
	if err == nil || err.Error() != "while expecting node ID nodeb, got message: Receptor Control, node other" {
		t.Fatalf("Greet of the wrong node: %v", err)
	}
}

func TestPeerRequestsAreUpstreams(t *testing.T) {
	ctx := context.Background()
	c := peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, `{"command":"work","node":"nodeb","p":"v","signature":"tok","subcommand":"submit","tlsclient":"","worktype":"cat"}`+"\n")
		io.WriteString(w, "Work unit created with ID Ab12. Send stdin data and EOF.\n")
		if b, err := io.ReadAll(r); err != nil || string(b) != "payload" {
			t.Errorf("payload = %q, %v", b, err)
		}
		io.WriteString(w, `{"result":"Job Started","unitid":"Ab12"}`+"\n")
	})
	id, err := c.StartSubmit(ctx, map[string]string{"node": "nodeb", "worktype": "cat", "tlsclient": "", "p": "v", "signature": "tok"})
	if err != nil || id != "Ab12" {
		t.Fatalf("StartSubmit = %q, %v", id, err)
	}
	if err := c.SendPayload(ctx, strings.NewReader("payload")); err != nil {
		t.Fatal(err)
	}
	if line, err := c.ReadReply(ctx); err != nil || line != `{"result":"Job Started","unitid":"Ab12"}`+"\n" {
		t.Fatalf("final reply = %q, %v", line, err)
	}

	c = peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, `{"command":"work","subcommand":"submit"}`+"\n")
		io.WriteString(w, "ERROR: unknown work type x\n")
	})
	if _, err := c.StartSubmit(ctx, nil); err == nil || err.Error() != "could not parse response: ERROR: unknown work type x" {
		t.Fatalf("StartSubmit refused = %v", err)
	}

	c = peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, "work status Ab12\n")
		io.WriteString(w, "{\"State\":2}\n")
		expectLine(t, r, "work status Cd34\n")
		io.WriteString(w, "ERROR: unknown work unit Cd34\n")
	})
	if line, err := c.WorkStatus(ctx, "Ab12"); err != nil || line != "{\"State\":2}\n" {
		t.Fatalf("WorkStatus = %q, %v", line, err)
	}
	if line, err := c.WorkStatus(ctx, "Cd34"); err != nil || line != "ERROR: unknown work unit Cd34\n" {
		t.Fatalf("WorkStatus = %q, %v", line, err)
	}

	c = peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, `{"command":"work","subcommand":"results","unitid":"Ab12","startpos":7,"signature":"tok"}`+"\n")
		io.WriteString(w, "Streaming results for work unit Ab12\n")
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("no half-close after the results header: %v", err)
		}
		io.WriteString(w, "rest of it")
	})
	stream, err := c.ResultsFrom(ctx, "Ab12", 7, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(stream); err != nil || string(b) != "rest of it" {
		t.Fatalf("results = %q, %v", b, err)
	}

	c = peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, `{"command":"work","subcommand":"results","unitid":"Ab12","startpos":0}`+"\n")
		io.WriteString(w, "ERROR: unknown work unit Ab12\n")
	})
	if _, err := c.ResultsFrom(ctx, "Ab12", 0, ""); err == nil || err.Error() != "results of remote unit Ab12: ERROR: unknown work unit Ab12" {
		t.Fatalf("ResultsFrom refused = %v", err)
	}

	c = peer(t, func(r *bufio.Reader, w net.Conn) {
		expectLine(t, r, `{"command":"work","signature":"tok","subcommand":"release","unitid":"Ab12"}`+"\n")
		io.WriteString(w, "ERROR: unknown work unit Ab12\n")
		expectLine(t, r, `{"command":"work","subcommand":"cancel","unitid":"Ab12"}`+"\n")
		io.WriteString(w, `{"cancelled":"Ab12"}`) // the peer closes before the newline
	})
	if line, err := c.CancelWork(ctx, "Ab12", true, "tok"); err != nil || line != "ERROR: unknown work unit Ab12\n" {
		t.Fatalf("CancelWork = %q, %v", line, err)
	}
	if line, err := c.CancelWork(ctx, "Ab12", false, ""); err != io.EOF || line != `{"cancelled":"Ab12"}` {
		t.Fatalf("CancelWork without a newline = %q, %v", line, err)
	}
}
