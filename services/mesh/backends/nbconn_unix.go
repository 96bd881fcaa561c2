//go:build unix

package backends

import (
	"io"
	"os"
	"syscall"
)

const nonblockingWrites = true

// writeNonblocking writes as much of p as the socket takes now: it stops
// at EAGAIN instead of waiting for the socket to drain (the runtime keeps
// network sockets in non-blocking mode), and reports how much went out.
func writeNonblocking(raw syscall.RawConn, p []byte) (int, error) {
	var (
		n    int
		werr error
	)
	err := raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == syscall.EINTR:
			case e == syscall.EAGAIN:
				return true
			case e != nil:
				werr = os.NewSyscallError("write", e)
				return true
			case m <= 0:
				werr = io.ErrShortWrite
				return true
			}
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}
