package mesh

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// This file is the contract between the mesh node and the layers built on
// its datagram sockets (the QUIC stream layer in package stream, service
// proxies, the router's gRPC API). Keep it small and stable.

// Network is the name every mesh address reports from Network().
const Network = "netceptor"

// Addr is a mesh address: a service on a node.
type Addr struct {
	Node    string
	Service string
}

// Network implements net.Addr.
func (a Addr) Network() string { return Network }

// String implements net.Addr as "node:service".
func (a Addr) String() string { return a.Node + ":" + a.Service }

// AddrOf converts a net.Addr to an Addr: an Addr or *Addr as it is,
// anything else by splitting its String at the first ":" into node and
// service. On an error it still returns its best reading (the whole text as
// Node when there is no ":"), for callers that only label connections with it.
func AddrOf(a net.Addr) (Addr, error) {
	switch v := a.(type) {
	case Addr:
		return v, nil
	case *Addr:
		return *v, nil
	case nil:
		return Addr{}, errors.New("nil address")
	}
	node, svc, ok := strings.Cut(a.String(), ":")
	if !ok {
		return Addr{Node: node}, fmt.Errorf("%q is not a node:service address", a.String())
	}
	return Addr{Node: node, Service: svc}, nil
}

// ConnType is the advertised kind of a service (wire values, docs/protocol.md §4.5).
type ConnType uint8

const (
	ConnTypeDatagram  ConnType = 0 // a datagram service
	ConnTypeStream    ConnType = 1 // a QUIC stream service without user TLS
	ConnTypeStreamTLS ConnType = 2 // a QUIC stream service with user TLS
)

// WorkCommand is one work type listed in a control service advertisement.
type WorkCommand struct {
	WorkType string
	Secure   bool // submissions must be signed
}

// ServiceAd is what a listener asks the node to advertise for its service.
type ServiceAd struct {
	ConnType     ConnType
	Tags         map[string]string
	WorkCommands []WorkCommand
}

// Unreachable is a notification that a message sent from a local socket
// could not be delivered (docs/protocol.md §8.3). ReportedBy is the node that sent the
// unreachable message; the other fields are copied from the failed message.
type Unreachable struct {
	ReportedBy  string
	FromNode    string
	ToNode      string
	FromService string
	ToService   string
	Problem     string // "service unknown", "message expired" or "blocked by firewall"
}

// Problem strings carried in unreachable messages (exact wire values).
const (
	ProblemServiceUnknown    = "service unknown"
	ProblemExpired           = "message expired"
	ProblemBlockedByFirewall = "blocked by firewall"
)

// PacketConn is a datagram socket bound to a service on the local node.
// ReadFrom returns one message payload and the sender as an Addr; WriteTo
// takes an Addr (or any net.Addr whose String is "node:service").
type PacketConn interface {
	net.PacketConn
	// Unreachable delivers the unreachable notifications addressed to this
	// socket. The channel is buffered and drops notifications when full; it
	// is closed when the socket is closed.
	Unreachable() <-chan Unreachable
}

// PacketNetwork is the part of a node that the stream layer and other
// datagram users need. *Node implements it.
type PacketNetwork interface {
	NodeID() string
	// ListenPacket binds service on this node; "" picks an ephemeral name.
	ListenPacket(service string) (PacketConn, error)
	// ListenPacketAndAdvertise binds service and advertises it to the mesh
	// until the socket is closed (then a Cancel is flooded).
	ListenPacketAndAdvertise(service string, ad ServiceAd) (PacketConn, error)
}
