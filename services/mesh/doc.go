// Package mesh is the netceptor node (docs/protocol.md §5-§8): sessions
// over backends, link-state routing updates, service advertisements with
// cancel tombstones, ping and traceroute, unreachable notifications,
// datagram sockets and the firewall. Wire encodings live in package wire,
// path computation in routing, rule evaluation in firewall; backends/memory
// provides in-process links.
//
// # Use as a library
//
// New starts a node; AddBackend links it to its neighbours through a
// backend from package backends (TCP, UDP, websocket listeners and dialers)
// or backends/memory (in-process). Sessions and routes come up in the
// background: poll Status().RoutingTable until it lists the nodes you need.
// ListenPacket binds a datagram socket (a net.PacketConn addressed by Addr
// "node:service"); package stream runs reliable net.Conn streams over such
// sockets with stream.Listen and stream.Dial. Close stops the node.
// Example shows two nodes exchanging a datagram and a stream. Programs
// outside the process that owns the node reach the mesh through a router's
// gRPC API with package meshclient instead.
package mesh
