//go:build !unix

package backends

import (
	"errors"
	"net"
	"syscall"
)

// Elsewhere nbConn always writes blocking (newNBConn leaves raw nil).
const nonblockingWrites = false

func writeNonblocking(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("non-blocking writes are not supported on this platform")
}

func sendNonblocking(syscall.RawConn, []byte, syscall.Sockaddr) (bool, error) {
	return false, errors.New("non-blocking writes are not supported on this platform")
}

func udpSockaddr(net.Addr, net.Addr) syscall.Sockaddr { return nil }
