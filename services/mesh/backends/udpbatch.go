package backends

import (
	"bytes"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
)

// UDP sessions move datagrams in batches: sendmmsg(2) for what a session's
// writer has queued, recvmmsg(2) for what the socket has received. Each
// message is still one datagram (the wire contract); only the number of
// syscalls changes.

const (
	// udpBatch is how many datagrams one recvmmsg may return.
	udpBatch = 16
	// udpOverflow holds the part of a datagram beyond a pooled buffer, so a
	// datagram of any size (up to 64 KiB) is received whole. Its pages are
	// only touched by such large datagrams (routing updates of big meshes).
	udpOverflow = udpReceiveBufferSize - PooledMessageCap
)

// udpBatchReader hands out received datagrams one at a time, reading up to
// udpBatch at once. Small datagrams come in pooled buffers (MessageBuffer).
type udpBatchReader struct {
	pc      *ipv4.PacketConn
	msgs    []ipv4.Message
	pending int // msgs[next:pending] are received and not yet handed out
	next    int
}

func newUDPBatchReader(c net.PacketConn) *udpBatchReader {
	r := &udpBatchReader{pc: ipv4.NewPacketConn(c), msgs: make([]ipv4.Message, udpBatch)}
	for i := range r.msgs {
		r.msgs[i].Buffers = [][]byte{MessageBuffer()[:PooledMessageCap], make([]byte, udpOverflow)}
	}
	return r
}

// read returns the next datagram (possibly empty) and its source; the
// caller owns the datagram.
func (r *udpBatchReader) read() ([]byte, net.Addr, error) {
	for r.next >= r.pending {
		n, err := r.pc.ReadBatch(r.msgs, 0)
		if err != nil {
			return nil, nil, err
		}
		r.pending, r.next = n, 0
	}
	m := &r.msgs[r.next]
	r.next++
	small := m.Buffers[0]
	if m.N <= len(small) {
		m.Buffers[0] = MessageBuffer()[:PooledMessageCap]
		return small[:m.N], m.Addr, nil
	}
	msg := make([]byte, m.N)
	copy(msg, small)
	copy(msg[len(small):], m.Buffers[1])
	return msg, m.Addr, nil
}

// udpBatchWriter sends a batch of datagrams to one address (nil on a
// connected socket) with as few syscalls as the kernel allows.
type udpBatchWriter struct {
	pc   *ipv4.PacketConn
	addr net.Addr
	msgs []ipv4.Message
	bufs [][1][]byte
}

func newUDPBatchWriter(c net.PacketConn, addr net.Addr) *udpBatchWriter {
	return &udpBatchWriter{pc: ipv4.NewPacketConn(c), addr: addr,
		msgs: make([]ipv4.Message, maxWriteBatch), bufs: make([][1][]byte, maxWriteBatch)}
}

func (w *udpBatchWriter) write(batch [][]byte) error {
	for len(batch) > 0 {
		k := min(len(batch), len(w.msgs))
		for i, b := range batch[:k] {
			w.bufs[i][0] = b
			w.msgs[i] = ipv4.Message{Buffers: w.bufs[i][:], Addr: w.addr}
		}
		ms := w.msgs[:k]
		for len(ms) > 0 {
			n, err := w.pc.WriteBatch(ms, 0)
			if err != nil {
				return err
			}
			ms = ms[n:]
		}
		batch = batch[k:]
	}
	clear(w.bufs)
	return nil
}

// batchableUDP reports whether x/net's batch calls can address peer from
// the socket bound at local: it encodes an IPv4 peer as an IPv4 socket
// address, which a dual-stack (IPv6) socket refuses, so such pairs keep
// one WriteTo per datagram.
func batchableUDP(local, peer net.Addr) bool {
	l, ok1 := local.(*net.UDPAddr)
	p, ok2 := peer.(*net.UDPAddr)
	return ok1 && ok2 && (l.IP.To4() != nil) == (p.IP.To4() != nil)
}

// udpSender is the directConn of a UDP session: in blocking mode it sends
// batches (udpBatchWriter); in non-blocking mode it sends one datagram at
// a time while the socket takes them, and keeps copies of the rest, in
// order, as its backlog.
type udpSender struct {
	w   *udpBatchWriter
	raw syscall.RawConn // nil: never non-blocking
	sa  syscall.Sockaddr
	// send is sendNonblocking (tests make the socket "full" with it).
	send func(raw syscall.RawConn, msg []byte, sa syscall.Sockaddr) (bool, error)

	writeMode
	backlog [][]byte
}

// newUDPSender sends w's datagrams; non-blocking sends go through pc's
// descriptor, to sa (nil on a connected socket, when connected is set).
func newUDPSender(w *udpBatchWriter, pc net.PacketConn, sa syscall.Sockaddr, connected bool) *udpSender {
	u := &udpSender{w: w, sa: sa, send: sendNonblocking}
	u.blocking = true
	if sc, ok := pc.(syscall.Conn); ok && nonblockingWrites && (connected || sa != nil) {
		if raw, err := sc.SyscallConn(); err == nil {
			u.raw = raw
		}
	}
	return u
}

func (u *udpSender) canDirect() bool  { return u.raw != nil }
func (u *udpSender) oneAtATime() bool { return true }

func (u *udpSender) flush() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.flushLocked()
}

func (u *udpSender) flushLocked() error {
	if len(u.backlog) == 0 {
		return nil
	}
	err := u.w.write(u.backlog)
	clear(u.backlog)
	u.backlog = u.backlog[:0]
	u.pending.Store(false)
	return err
}

// write sends a batch; the caller keeps (and releases) its buffers.
func (u *udpSender) write(batch [][]byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.blocking || u.raw == nil {
		if err := u.flushLocked(); err != nil {
			return err
		}
		return u.w.write(batch)
	}
	for _, m := range batch {
		if len(u.backlog) == 0 {
			sent, err := u.send(u.raw, m, u.sa)
			if err != nil {
				return err
			}
			if sent {
				continue
			}
		}
		u.backlog = append(u.backlog, bytes.Clone(m))
		u.pending.Store(true)
	}
	return nil
}
