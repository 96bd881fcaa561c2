// Package proxy implements Receptor's service proxy entities
// (docs/protocol.md §11): tcp-server, tcp-client, udp-server, udp-client,
// unix-socket-server and unix-socket-client. A *-server listens on a local socket and dials
// into the mesh; a *-client listens on the mesh and dials a local socket.
//
// Every proxy is built by its New... constructor (which checks the
// configuration and resolves TLS names without binding anything) and run
// by Start, which binds synchronously and serves in the background until
// its context ends. FromConfig and StartAll do this for a whole config.
//
// Stream proxies bridge each connection with Bridge. Advertisements
// (ConnType and Tags), TLS placement and the (node, service) pairs used
// match upstream. Deliberate differences, all compatible with upstream peers:
//   - A connection whose other leg cannot be opened is closed at once (a
//     local socket is closed, a mesh stream gets FIN) instead of being left
//     open and silent; dials run concurrently, not inside the accept loop.
//   - Half-close is preserved on our legs: EOF on one side becomes
//     CloseWrite (FIN, or close_notify for TLS) on the other while the
//     opposite direction keeps flowing; upstream closes the local socket
//     fully. Any other error tears both sides down.
//   - Concurrent stream connections are bounded (Options.MaxConns); dials,
//     including local TLS handshakes, are bounded by Options.DialTimeout.
//   - UDP sessions expire after Options.UDPIdleTimeout without traffic and
//     are bounded by Options.MaxUDPSessions; failing to open one drops that
//     datagram instead of stopping the proxy; a read error on a udp-client
//     session socket (ICMP port unreachable) does not end its return path.
//   - udp-server with remotenode=localhost accepts replies from this node
//     (upstream compares the literal name and drops them all).
//   - udp-server binds with net.JoinHostPort, so an IPv6 bindaddr works.
//   - ip-router is not implemented: FromConfig returns
//     ErrIPRouterUnsupported.
package proxy
