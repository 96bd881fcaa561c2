package backends

import (
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// refusedAtOnce reports whether the listener closed c without waiting.
func refusedAtOnce(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestTCPListenerConnectionCap(t *testing.T) {
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0", MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, l)
	var kept []Session
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		kept = append(kept, r.next())
	}
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !refusedAtOnce(t, extra) {
		t.Fatal("connection over the cap not closed")
	}
	// A slot freed by a closed session is usable again.
	_ = kept[0].Close()
	deadline := time.Now().Add(failAfter)
	for {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case <-r.sessions:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no session after a slot was freed")
		}
	}
}

func TestWebsocketListenerConnectionCap(t *testing.T) {
	l, err := NewWebsocketListener(WebsocketListenerOptions{Address: "127.0.0.1:0", MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, l)
	url := "ws://" + l.Addr().String() + "/"
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := r.next()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !refusedAtOnce(t, raw) {
		t.Fatal("connection over the cap not closed")
	}
	// The websocket within the cap still works.
	if err := c.WriteMessage(websocket.BinaryMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, s), []byte("hi"))
}
