// Package mesh is the netceptor node: sessions over backends (spec
// mesh-protocol.md §7), link-state routing updates (§8), service
// advertisements with cancel tombstones (§9), ping and traceroute (§10),
// unreachable notifications (§11), datagram sockets (§12) and the firewall
// (§13). Wire encodings live in package wire, path computation in routing,
// rule evaluation in firewall; backends/memory provides in-process links.
package mesh
