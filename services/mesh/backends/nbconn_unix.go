//go:build unix

package backends

import (
	"io"
	"net"
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

// sendNonblocking sends one datagram if the socket takes it now: to sa,
// or on a connected socket when sa is nil. It reports false, with no
// error, when the socket would block.
func sendNonblocking(raw syscall.RawConn, msg []byte, sa syscall.Sockaddr) (bool, error) {
	var (
		sent bool
		serr error
	)
	err := raw.Write(func(fd uintptr) bool {
		for {
			var e error
			if sa == nil {
				_, e = syscall.Write(int(fd), msg)
			} else {
				e = syscall.Sendto(int(fd), msg, 0, sa)
			}
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
			case e != nil:
				serr = os.NewSyscallError("sendto", e)
			default:
				sent = true
			}
			return true
		}
	})
	if err != nil {
		return false, err
	}
	return sent, serr
}

// udpSockaddr is addr as the socket address of a socket bound at local,
// or nil when it cannot be written plainly (another family, a zone).
func udpSockaddr(local, addr net.Addr) syscall.Sockaddr {
	l, ok1 := local.(*net.UDPAddr)
	a, ok2 := addr.(*net.UDPAddr)
	if !ok1 || !ok2 || a.Zone != "" {
		return nil
	}
	if ip4 := a.IP.To4(); ip4 != nil && l.IP.To4() != nil {
		sa := &syscall.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	if a.IP.To4() == nil && l.IP.To4() == nil && len(a.IP) == net.IPv6len {
		sa := &syscall.SockaddrInet6{Port: a.Port}
		copy(sa.Addr[:], a.IP)
		return sa
	}
	return nil
}
