package backends

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FuzzFrameReaderResume delivers a stream through the bufio.Reader a TCP
// session reads, with read deadlines passing at fuzz-chosen points (a Read
// that returns nothing and os.ErrDeadlineExceeded, as a net.Conn does). A
// frameReader retried after each one must return exactly the frames and the
// final error that ReadFrame returns from the same bytes in one go: a
// deadline never loses or repeats a byte of the stream.
func FuzzFrameReaderResume(f *testing.F) {
	f.Add([]byte{3, 0, 1, 2, 3, 1, 0, 9}, []byte{0, 1, 0, 2})
	f.Add([]byte{0, 0}, []byte{0})
	f.Add([]byte{5, 0, 1, 2}, []byte{1, 0, 1, 0, 0})
	f.Add(append([]byte{0x00, 0x08}, make([]byte, 2048)...), []byte{4, 0, 5, 0, 6})
	f.Add(append([]byte{0x01, 0x08}, make([]byte, 2049)...), []byte{3})
	f.Fuzz(func(t *testing.T, data, stutter []byte) {
		want, wantErr := readAllFrames(data)
		fr := frameReader{r: bufio.NewReaderSize(&stutterReader{r: bytes.NewReader(data), plan: stutter}, 16), alloc: pooledAlloc}
		for i, timeouts := 0, 0; ; {
			msg, err := fr.readMessage()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if timeouts++; timeouts > len(data)+1 {
					t.Fatalf("frame %d: still timing out after %d deadlines", i, timeouts)
				}
				continue
			}
			if err != nil {
				if i != len(want) || !sameKind(err, wantErr) {
					t.Fatalf("frame %d: error %v; ReadFrame gave %d frames, then %v", i, err, len(want), wantErr)
				}
				return
			}
			if i >= len(want) || !bytes.Equal(msg, want[i]) {
				t.Fatalf("frame %d differs from ReadFrame's", i)
			}
			ReleaseMessage(msg)
			i++
		}
	})
}

// stutterReader reads r in pieces set by plan, one plan byte per Read
// (cycling): a multiple of 3 makes that Read fail as an expired deadline
// (unless the Read before it failed: the stream moves on), anything else
// reads at most b%7+1 bytes.
type stutterReader struct {
	r      io.Reader
	plan   []byte
	i      int
	failed bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if len(s.plan) == 0 {
		return s.r.Read(p)
	}
	b := s.plan[s.i%len(s.plan)]
	s.i++
	if b%3 == 0 && !s.failed {
		s.failed = true
		return 0, os.ErrDeadlineExceeded
	}
	s.failed = false
	return s.r.Read(p[:min(len(p), int(b%7)+1)])
}

// inner is the session under a TCP session's identity wrapper.
func inner(t *testing.T, s Session) *session {
	t.Helper()
	switch v := s.(type) {
	case *session:
		return v
	case *identifiedSession:
		return v.session
	case *udpListenerSession:
		return v.session
	}
	t.Fatalf("unexpected session type %T", s)
	return nil
}

// TestTCPDirectReadKeepsItsPlace: a Recv whose timeout passes in the middle
// of a frame leaves the session where it was; the frame arrives whole once
// the rest is sent.
func TestTCPDirectReadKeepsItsPlace(t *testing.T) {
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := lr.next()
	if inner(t, s).rd == nil {
		t.Fatal("a TCP session does not read its connection itself")
	}
	msg := pattern(3000, 7)
	frame, err := AppendFrame(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 2, 1500, len(frame) - 1} {
		if _, err := conn.Write(frame[:cut]); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := s.Recv(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
				t.Fatalf("cut at %d: Recv of a partial frame: %v, want ErrTimeout", cut, err)
			}
		}
		if _, err := conn.Write(frame[cut:]); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, recv(t, s), msg)
	}
}

// TestDirectWritesKeepOrder: senders writing straight to the socket,
// some left with a backlog because the peer is not reading, and the writer
// goroutine finishing what they leave, still put every sender's messages
// on the wire whole and in that sender's order, over TCP and TLS, from the
// dialing and the listening side.
func TestDirectWritesKeepOrder(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name     string
		tls      bool
		fromDial bool
	}{
		{"tcp dialer", false, true},
		{"tls listener", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var serverTLS, clientTLS *tls.Config
			if tc.tls {
				serverTLS, clientTLS = pki.serverConfig(), pki.clientConfig()
			}
			lr, dr := newTCPPair(t, serverTLS, clientTLS)
			ds, ls := dr.next(), lr.next()
			if !tc.fromDial {
				ds, ls = ls, ds
			}
			d := inner(t, ds)
			if d.direct == nil {
				t.Fatal("the session does not write directly")
			}
			const senders, each, size = 4, 400, 30000
			// First, with the peer not reading, sender 1 alone writes until
			// one of its direct writes finds the socket full and leaves a
			// backlog (the writer goroutine then blocks finishing it). Held
			// and flushed, every message is written by the sender itself:
			// Enqueue's own path would hand close messages to the writer,
			// whose blocking write leaves no backlog, and a waiting enqueue
			// would then wait for a peer that never reads.
			first := 0
			for ; !d.direct.backlogged(); first++ {
				if first == each {
					t.Fatalf("%d bytes written directly to a peer that reads nothing, and no backlog", each*size)
				}
				queued, err := d.EnqueueHeld(numbered(1, first, size))
				if err != nil || !queued {
					t.Fatalf("message %d: queued %v, %v", first, queued, err)
				}
				d.Flush()
			}
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			for id := range senders {
				wg.Go(func() {
					for seq := range each {
						if id == 1 && seq < first {
							continue
						}
						m := numbered(id, seq, size)
						var err error
						switch id {
						case 0: // sparse: written by the sender (Enqueue's direct path)
							if seq%50 == 0 {
								time.Sleep(2 * directGap)
							}
							_, err = d.EnqueueWait(m, nil)
						case 1: // held, then flushed by the sender
							if _, err = d.EnqueueWait(m, nil); err == nil {
								d.Flush()
							}
						default:
							err = d.Send(m)
						}
						if err != nil {
							errs <- fmt.Errorf("sender %d, message %d: %w", id, seq, err)
							return
						}
					}
				})
			}
			next := make([]int, senders)
			for got := 0; got < senders*each; got++ {
				m := recv(t, ls)
				id, seq := int(m[0]), int(binary.LittleEndian.Uint32(m[1:]))
				if id >= senders || seq != next[id] || !bytes.Equal(m, numbered(id, seq, size)) {
					t.Fatalf("message %d: sender %d's #%d, want #%d, intact: %v", got, id, seq, next[min(id, senders-1)],
						id < senders && bytes.Equal(m, numbered(id, seq, size)))
				}
				next[id]++
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// numbered is a message of size bytes that names its sender and sequence
// number and whose body depends on both.
func numbered(id, seq, size int) []byte {
	m := pattern(size, byte(id*31+seq))
	m[0] = byte(id)
	binary.LittleEndian.PutUint32(m[1:], uint32(seq))
	return m
}

// TestNBConnBacklog: a non-blocking write that the socket cannot take
// whole keeps the rest as its backlog and reports all of it written; the
// bytes reach the peer in order once flush writes the backlog.
func TestNBConnBacklog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	c := newNBConn(raw)
	if !c.canDirect() {
		t.Fatal("a TCP connection cannot write non-blocking")
	}
	c.setBlocking(false)
	want := pattern(16<<20, 3) // more than loopback's socket buffers hold
	for off := 0; off < len(want); off += 1 << 20 {
		n, err := c.Write(want[off : off+1<<20])
		if err != nil || n != 1<<20 {
			t.Fatalf("non-blocking write at %d: %d, %v", off, n, err)
		}
	}
	if !c.backlogged() {
		t.Fatal("16 MiB written to a peer that does not read, and no backlog")
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want))))
		got <- b
	}()
	c.setBlocking(true)
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if c.backlogged() {
		t.Fatal("backlog left after flush")
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("peer read %d bytes, not the %d written in order", len(b), len(want))
		}
	case <-time.After(failAfter):
		t.Fatal("peer did not read everything")
	}
}

// TestUDPSessionsAreDirect: a udp-peer session reads its socket itself, and
// both ends write directly; datagrams of every size still cross.
func TestUDPSessionsAreDirect(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	ds, ls := udpPair(t, l.Addr().String(), true, lr)
	if d := inner(t, ds); d.rd == nil || d.direct == nil {
		t.Fatalf("udp-peer session: direct reads %v, direct writes %v", d.rd != nil, d.direct != nil)
	}
	if inner(t, ls).direct == nil {
		t.Fatal("udp-listener session does not write directly")
	}
	exchange(t, ds, ls, []int{1, PooledMessageCap, PooledMessageCap + 1, MaxUDPMessageSize})
	// Held, then flushed by the sender.
	for i := range 20 {
		if _, err := inner(t, ds).EnqueueHeld(pattern(100, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	inner(t, ds).Flush()
	for i := range 20 {
		mustEqual(t, recv(t, ls), pattern(100, byte(i)))
	}
}

// TestUDPSenderBacklogKeepsOrder: datagrams a non-blocking send could not
// place (the socket "full" from the third on) wait as copies, and go out
// after the ones sent, in order, once flushed; later non-blocking writes
// queue behind them instead of overtaking.
func TestUDPSenderBacklogKeepsOrder(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	u := newUDPSender(newUDPBatchWriter(tx, nil), tx, nil, true)
	if !u.canDirect() {
		t.Fatal("a connected UDP socket cannot send non-blocking")
	}
	sends := 0
	u.send = func(raw syscall.RawConn, msg []byte, sa syscall.Sockaddr) (bool, error) {
		if sends++; sends > 2 {
			return false, nil
		}
		return sendNonblocking(raw, msg, sa)
	}
	u.setBlocking(false)
	batch := [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3")}
	if err := u.write(batch); err != nil {
		t.Fatal(err)
	}
	batch[2][0], batch[3][0] = 'x', 'x' // the caller reuses its buffers
	if err := u.write([][]byte{[]byte("4")}); err != nil {
		t.Fatal(err)
	}
	if !u.backlogged() {
		t.Fatal("no backlog after sends the socket refused")
	}
	u.setBlocking(true)
	if err := u.write([][]byte{[]byte("5")}); err != nil {
		t.Fatal(err)
	}
	if u.backlogged() {
		t.Fatal("backlog left after a blocking write")
	}
	buf := make([]byte, 16)
	_ = rx.SetReadDeadline(time.Now().Add(failAfter))
	for i := range 6 {
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), strconv.Itoa(i); got != want {
			t.Fatalf("datagram %d is %q, want %q", i, got, want)
		}
	}
}
