package integration

import (
	"fmt"
	"path/filepath"
	"strings"
)

// nodeYAML is a node's v1 configuration: node (with extra node params),
// debug logging, a control service on n.Socket, and items.
func nodeYAML(n *Node, nodeParams []string, items ...string) string {
	var b strings.Builder
	b.WriteString("---\n")
	b.WriteString(entity("node", append([]string{"id", n.ID, "datadir", filepath.Join(n.Dir, "data")}, nodeParams...)...))
	b.WriteString(entity("log-level", "level", "debug"))
	b.WriteString(entity("control-service", "service", "control", "filename", n.Socket))
	for _, it := range items {
		b.WriteString(it)
	}
	return b.String()
}

// nodeArgs is the command-line form of the same base entities plus more.
func nodeArgs(n *Node, more ...string) []string {
	return append([]string{
		"--node", "id=" + n.ID, "datadir=" + filepath.Join(n.Dir, "data"),
		"--log-level", "debug",
		"--control-service", "service=control", "filename=" + n.Socket,
	}, more...)
}

// transport describes one backend kind as listener and peer entities.
type transport struct {
	name string
	// listener returns the listener entity's params for n (port etc.).
	listener func(n *Node) (entity string, kv []string)
	// peer returns the peer entity's params for dialing n's listener.
	peer func(n *Node) (entity string, kv []string)
}

var (
	tcpTransport = transport{
		name: "tcp",
		listener: func(n *Node) (string, []string) {
			return "tcp-listener", []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1"}
		},
		peer: func(n *Node) (string, []string) {
			return "tcp-peer", []string{"address", n.Addr("mesh")}
		},
	}
	udpTransport = transport{
		name: "udp",
		listener: func(n *Node) (string, []string) {
			return "udp-listener", []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1"}
		},
		peer: func(n *Node) (string, []string) {
			return "udp-peer", []string{"address", n.Addr("mesh")}
		},
	}
	wsTransport = transport{
		name: "ws",
		listener: func(n *Node) (string, []string) {
			return "ws-listener", []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1", "path", "/mesh"}
		},
		peer: func(n *Node) (string, []string) {
			return "ws-peer", []string{"address", "ws://" + n.Addr("mesh") + "/mesh"}
		},
	}
)

// tlsTransport is tcp with TLS on both sides; each node needs tls-server
// "srv" and tls-client "cli" entities (see pki).
var tlsTransport = transport{
	name: "tls",
	listener: func(n *Node) (string, []string) {
		return "tcp-listener", []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1", "tls", "srv"}
	},
	peer: func(n *Node) (string, []string) {
		return "tcp-peer", []string{"address", n.Addr("mesh"), "tls", "cli"}
	},
}

// asYAML renders an entity and params as a YAML list item.
func asYAML(name string, kv []string) string { return entity(name, kv...) }

// asArgs renders an entity and params as command-line arguments.
func asArgs(name string, kv []string) []string {
	args := []string{"--" + name}
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, kv[i]+"="+kv[i+1])
	}
	return args
}

// wssTransport is websockets over TLS, with the same TLS entities as
// tlsTransport.
var wssTransport = transport{
	name: "wss",
	listener: func(n *Node) (string, []string) {
		return "ws-listener", []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1", "path", "/mesh", "tls", "srv"}
	},
	peer: func(n *Node) (string, []string) {
		return "ws-peer", []string{"address", "wss://" + n.Addr("mesh") + "/mesh", "tls", "cli"}
	},
}
