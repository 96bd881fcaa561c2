// Package loopback decides whether a listen address keeps a plaintext
// service on this machine. Listeners that refuse to serve without TLS
// elsewhere (the control service's tcplisten, the gRPC API, pprof) share
// this one rule.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host is "localhost" (any case) or a loopback IP
// address (127.0.0.0/8, ::1). Empty hosts and unspecified addresses
// (0.0.0.0, ::) listen on every interface and are not loopback; other host
// names are not resolved and are not loopback either.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ListenHost is the host a tcplisten value binds: upstream's rule makes a
// value without a colon a port on 0.0.0.0. A malformed host:port is an
// error.
func ListenHost(tcplisten string) (string, error) {
	if !strings.Contains(tcplisten, ":") {
		return "0.0.0.0", nil
	}
	host, _, err := net.SplitHostPort(tcplisten)
	return host, err
}
