package config

import (
	"fmt"
	"reflect"
	"strings"
)

// paramSpec describes one parameter of an entity, derived from struct tags.
type paramSpec struct {
	name     string // lower-case parameter name
	field    int    // struct field index
	kind     kind
	def      string // default, converted like a command-line value
	parseErr string // message replacing the generic conversion error
	required bool
	bare     bool
	svc      bool   // a mesh service name: at most 8 bytes
	ref      string // "tls-server" or "tls-client": must name such a config
	help     string
}

// entitySpec describes one entity; the registry of these drives the command
// line parser, both YAML forms, the environment, validation and --help.
type entitySpec struct {
	name      string
	section   string
	help      string
	v2key     string // key in the v2 keyed form
	singleton bool
	exclusive bool
	required  bool
	hidden    bool
	typ       reflect.Type
	params    []*paramSpec
	byName    map[string]*paramSpec
	bare      *paramSpec
	add       func(c *Config, v any) int // stores a built value, returns its index
}

type attrs struct {
	singleton, exclusive, required, hidden bool
	v2key                                  string
}

// define builds an entitySpec for the struct type T from its tags.
func define[T any](name, section, help string, a attrs, add func(c *Config, v *T) int) *entitySpec {
	t := reflect.TypeFor[T]()
	s := &entitySpec{
		name: name, section: section, help: help, v2key: a.v2key,
		singleton: a.singleton, exclusive: a.exclusive, required: a.required, hidden: a.hidden,
		typ: t, byName: map[string]*paramSpec{},
		add: func(c *Config, v any) int { return add(c, v.(*T)) },
	}
	if s.v2key == "" {
		s.v2key = name
		if !s.singleton && !s.exclusive {
			s.v2key = name + "s"
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("cfg")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		k, ok := kindOf(f.Type)
		if !ok {
			panic(fmt.Sprintf("config: %s.%s: unsupported field type %s", t.Name(), f.Name, f.Type))
		}
		p := &paramSpec{name: parts[0], field: i, kind: k, def: f.Tag.Get("default"),
			parseErr: f.Tag.Get("parseerr"), ref: f.Tag.Get("ref"), help: f.Tag.Get("help")}
		for _, flag := range parts[1:] {
			switch flag {
			case "bare":
				p.bare = true
				s.bare = p
			case "required":
				p.required = true
			case "svc":
				p.svc = true
			default:
				panic(fmt.Sprintf("config: %s.%s: unknown flag %q", t.Name(), f.Name, flag))
			}
		}
		s.params = append(s.params, p)
		s.byName[p.name] = p
	}
	return s
}

func appendTo[T any](l *[]T, v *T) int {
	*l = append(*l, *v)
	return len(*l) - 1
}

const (
	secGlobal   = "Global options"
	secBackends = "Backends"
	secTLS      = "TLS configurations"
	secServices = "Services"
	secWorkers  = "Work types"
	secAPI      = "API and split deployment"
	secCerts    = "Certificate commands (run and exit)"
)

// sections orders --help output.
var sections = []string{secGlobal, secTLS, secBackends, secServices, secWorkers, secAPI, secCerts}

// registry lists every entity in the order used for the v2 form and help:
// node first, then what other entities reference (TLS), then the rest.
var registry = []*entitySpec{
	define("node", secGlobal, "Node identity and data directory", attrs{singleton: true, required: true},
		func(c *Config, v *Node) int { c.Node = *v; return 0 }),
	define("log-level", secGlobal, "Log verbosity", attrs{singleton: true},
		func(c *Config, v *LogLevel) int { c.LogLevel = v.Level; return 0 }),
	define("log-format", secGlobal, "Log line format", attrs{singleton: true},
		func(c *Config, v *LogFormat) int { c.LogFormat = v.Format; return 0 }),
	define("trace", secGlobal, "Packet tracing (accepted; no effect)", attrs{singleton: true},
		func(c *Config, _ *Trace) int { c.Trace = true; return 0 }),
	define("local-only", secGlobal, "Run a self-contained node with no backends", attrs{singleton: true},
		func(c *Config, _ *LocalOnly) int { c.LocalOnly = true; return 0 }),
	define("version", secGlobal, "Print the version and exit", attrs{exclusive: true},
		func(c *Config, _ *Version) int { c.Exclusive = &Exclusive{Name: "version"}; return 0 }),

	define("tls-server", secTLS, "Define a TLS server configuration", attrs{},
		func(c *Config, v *TLSServer) int { return appendTo(&c.TLSServers, v) }),
	define("tls-client", secTLS, "Define a TLS client configuration", attrs{},
		func(c *Config, v *TLSClient) int { return appendTo(&c.TLSClients, v) }),

	define("tcp-listener", secBackends, "Listen for mesh peers on a TCP port", attrs{},
		func(c *Config, v *TCPListener) int { return appendTo(&c.TCPListeners, v) }),
	define("tcp-peer", secBackends, "Connect to a mesh peer over TCP", attrs{},
		func(c *Config, v *TCPPeer) int { return appendTo(&c.TCPPeers, v) }),
	define("udp-listener", secBackends, "Listen for mesh peers on a UDP port", attrs{},
		func(c *Config, v *UDPListener) int { return appendTo(&c.UDPListeners, v) }),
	define("udp-peer", secBackends, "Connect to a mesh peer over UDP", attrs{},
		func(c *Config, v *UDPPeer) int { return appendTo(&c.UDPPeers, v) }),
	define("ws-listener", secBackends, "Accept mesh peers over websockets", attrs{},
		func(c *Config, v *WSListener) int { return appendTo(&c.WSListeners, v) }),
	define("ws-peer", secBackends, "Connect to a mesh peer over websockets", attrs{},
		func(c *Config, v *WSPeer) int { return appendTo(&c.WSPeers, v) }),

	define("control-service", secServices, "Run a control service", attrs{},
		func(c *Config, v *ControlService) int { return appendTo(&c.ControlServices, v) }),
	define("tcp-server", secServices, "Listen on TCP and forward into the mesh", attrs{},
		func(c *Config, v *TCPServer) int { return appendTo(&c.TCPServers, v) }),
	define("tcp-client", secServices, "Listen on a mesh service and forward to TCP", attrs{},
		func(c *Config, v *TCPClient) int { return appendTo(&c.TCPClients, v) }),
	define("udp-server", secServices, "Listen on UDP and forward into the mesh", attrs{},
		func(c *Config, v *UDPServer) int { return appendTo(&c.UDPServers, v) }),
	define("udp-client", secServices, "Listen on a mesh service and forward to UDP", attrs{},
		func(c *Config, v *UDPClient) int { return appendTo(&c.UDPClients, v) }),
	define("unix-socket-server", secServices, "Listen on a Unix socket and forward into the mesh", attrs{},
		func(c *Config, v *UnixSocketServer) int { return appendTo(&c.UnixSocketServers, v) }),
	define("unix-socket-client", secServices, "Listen on a mesh service and forward to a Unix socket", attrs{},
		func(c *Config, v *UnixSocketClient) int { return appendTo(&c.UnixSocketClients, v) }),
	define("ip-router", secServices, "Run an IP router over a tun interface", attrs{v2key: "iprouters"},
		func(c *Config, v *IPRouter) int { return appendTo(&c.IPRouters, v) }),
	define("command-service", secServices, "Run a command for each connection to a mesh service", attrs{},
		func(c *Config, v *CommandService) int { return appendTo(&c.CommandServices, v) }),

	define("work-signing", secWorkers, "Private key to sign work submissions", attrs{singleton: true},
		func(c *Config, v *WorkSigning) int { c.WorkSigning = v; return 0 }),
	define("work-verification", secWorkers, "Public key to verify work submissions", attrs{singleton: true},
		func(c *Config, v *WorkVerification) int { c.WorkVerification = v; return 0 }),
	define("work-command", secWorkers, "Run work using an external command", attrs{},
		func(c *Config, v *WorkCommand) int { return appendTo(&c.WorkCommands, v) }),
	define("work-kubernetes", secWorkers, "Run work using Kubernetes", attrs{v2key: "work-kubernetes"},
		func(c *Config, v *WorkKubernetes) int { return appendTo(&c.WorkKubernetes, v) }),
	define("work-python", secWorkers, "Run work using a Python plugin (deprecated)", attrs{},
		func(c *Config, v *WorkPython) int { return appendTo(&c.WorkPython, v) }),
	define("command-runner", secWorkers, "Run one command work unit (internal)", attrs{singleton: true, hidden: true},
		func(c *Config, v *CommandRunner) int { c.CommandRunner = v; return 0 }),

	define("grpc-server", secAPI, "Serve the gRPC API on a Unix socket and/or TCP", attrs{},
		func(c *Config, v *GRPCServer) int { return appendTo(&c.GRPCServers, v) }),
	define("http-gateway", secAPI, "Serve the REST/JSON gateway", attrs{singleton: true},
		func(c *Config, v *HTTPGateway) int { c.HTTPGateway = v; return 0 }),
	define("metrics", secAPI, "Serve Prometheus metrics at /metrics", attrs{singleton: true},
		func(c *Config, v *Metrics) int { c.Metrics = v; return 0 }),
	define("access", secAPI, "Grant a role to principals (who may do what on every face)", attrs{},
		func(c *Config, v *Access) int { return appendTo(&c.Access, v) }),
	define("work-agent", secAPI, "Where the router reaches its work agent (router side)", attrs{singleton: true},
		func(c *Config, v *WorkAgent) int { c.WorkAgent = v; return 0 }),
	define("router", secAPI, "Where the work agent reaches its router (worker side)", attrs{singleton: true},
		func(c *Config, v *RouterEndpoint) int { c.Router = v; return 0 }),

	define("cert-init", secCerts, "Initialize a PKI CA", attrs{exclusive: true},
		func(c *Config, v *CertInit) int { c.Exclusive = &Exclusive{Name: "cert-init", CertInit: v}; return 0 }),
	define("cert-makereq", secCerts, "Create a certificate request", attrs{exclusive: true, v2key: "cert-makereqs"},
		func(c *Config, v *CertMakeReq) int {
			c.Exclusive = &Exclusive{Name: "cert-makereq", CertMakeReq: v}
			return 0
		}),
	define("cert-signreq", secCerts, "Sign a request and produce a certificate", attrs{exclusive: true, v2key: "cert-signreqs"},
		func(c *Config, v *CertSignReq) int {
			c.Exclusive = &Exclusive{Name: "cert-signreq", CertSignReq: v}
			return 0
		}),
}

var byName = func() map[string]*entitySpec {
	m := make(map[string]*entitySpec, len(registry))
	for _, s := range registry {
		m[s.name] = s
	}
	return m
}()

func lookupEntity(name string) *entitySpec { return byName[name] }
