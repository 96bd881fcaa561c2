package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// BufferSize is the size of each direction's copy buffer. 64 KiB matches
// upstream's copy loops and lets one read of a busy TCP socket become one
// large write into a QUIC stream (no small writes).
const BufferSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// closeWriter is implemented by connections that can half-close:
// *net.TCPConn, *net.UnixConn, *tls.Conn and *stream.Conn.
type closeWriter interface{ CloseWrite() error }

// Bridge copies bytes between a and b in both directions until both
// directions have ended, then closes a and b. It returns the byte counts
// a→b and b→a.
//
// A clean EOF from one side half-closes the other side (CloseWrite, or a
// full Close when the connection cannot half-close), so the opposite
// direction keeps flowing. Any other read or write error, or ctx ending,
// closes both connections at once. The returned error is the first such
// failure (nil after two clean EOFs or when ctx ended the bridge).
func Bridge(ctx context.Context, a, b net.Conn) (aToB, bToA int64, err error) {
	var (
		mu     sync.Mutex
		closed bool
		first  error
	)
	// closeBoth ends the bridge; a failure recorded after it is only a
	// consequence (a Read or Write interrupted by the close) and is not
	// reported.
	closeBoth := func(cause error) {
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		closed, first = true, cause
		mu.Unlock()
		_ = a.Close()
		_ = b.Close()
	}
	stop := context.AfterFunc(ctx, func() { closeBoth(nil) })
	defer stop()

	direction := func(dst, src net.Conn, name string) int64 {
		n, e := copyConn(dst, src)
		switch {
		case e != nil:
			closeBoth(fmt.Errorf("bridge %s: %w", name, e))
		default:
			if cw, ok := dst.(closeWriter); !ok || cw.CloseWrite() != nil {
				// Cannot half-close: a full close is the closest we get,
				// and it ends the other direction too.
				closeBoth(nil)
			}
		}
		return n
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		bToA = direction(a, b, "b->a")
	}()
	aToB = direction(b, a, "a->b")
	<-done
	closeBoth(nil)

	mu.Lock()
	defer mu.Unlock()
	return aToB, bToA, first
}

// copyConn copies src to dst with a pooled buffer until EOF (nil error) or
// the first failure. It deliberately avoids io.Copy, whose ReadFrom/WriteTo
// fast paths would substitute their own smaller buffers for a QUIC stream.
func copyConn(dst, src net.Conn) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, fmt.Errorf("write to %s: %w", dst.RemoteAddr(), werr)
			}
			if w != n {
				return total, fmt.Errorf("write to %s: %w", dst.RemoteAddr(), io.ErrShortWrite)
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, fmt.Errorf("read from %s: %w", src.RemoteAddr(), rerr)
		}
	}
}
