// Package mesh is the netceptor node (docs/protocol.md §5-§8): sessions
// over backends, link-state routing updates, service advertisements with
// cancel tombstones, ping and traceroute, unreachable notifications,
// datagram sockets and the firewall. Wire encodings live in package wire,
// path computation in routing, rule evaluation in firewall; backends/memory
// provides in-process links.
package mesh
