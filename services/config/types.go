package config

import "time"

// The entity structs below are the schema: a field's `cfg` tag names the
// parameter and its flags (bare, required, svc = mesh service name of at most
// 8 bytes), `ref` names the kind of TLS config the value must reference,
// `default` is applied when the parameter is omitted, `help` feeds --help.

// Node is the `node` entity (required singleton; implicit when absent).
type Node struct {
	ID                               string              `cfg:"id,bare" help:"Node ID (default: the host name)"`
	DataDir                          string              `cfg:"datadir" default:"/tmp/receptor" help:"Directory for node data (work units)"`
	FirewallRules                    []map[string]string `cfg:"firewallrules" help:"Firewall rules: list of maps of action/fromnode/tonode/fromservice/toservice"`
	MaxIdleConnectionTimeout         time.Duration       `cfg:"maxidleconnectiontimeout" default:"21s" help:"Idle time before a backend connection is dropped (at least 21s)"`
	ReceptorKubeSupportReconnect     string              `cfg:"receptorkubesupportreconnect" help:"Kubernetes log reconnect support (v2 form)"`
	ReceptorKubeClientsetQPS         string              `cfg:"receptorkubeclientsetqps" help:"Kubernetes client QPS (v2 form)"`
	ReceptorKubeClientsetBurst       string              `cfg:"receptorkubeclientsetburst" help:"Kubernetes client burst (v2 form)"`
	ReceptorKubeClientsetRateLimiter string              `cfg:"receptorkubeclientsetratelimiter" help:"Kubernetes client rate limiter (v2 form)"`
}

// LogLevel is the `log-level` entity.
type LogLevel struct {
	Level string `cfg:"level,bare" default:"error" help:"Log level: error, warning, info or debug"`
}

// LogFormat is the `log-format` entity.
type LogFormat struct {
	Format string `cfg:"format,bare" default:"text" help:"Log line format: text (upstream-style lines) or json (one JSON object per line)"`
}

// Metrics is the `metrics` entity: a listener serving Prometheus metrics
// at /metrics (the http-gateway serves them too).
type Metrics struct {
	TCPListen string `cfg:"tcplisten,required" help:"TCP port or host:port; without tls only a loopback address"`
	TLS       string `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config (HTTPS; with clientcas, client certificates name callers as cert:NAME)"`
}

// Trace is the `trace` entity (accepted, no effect upstream).
type Trace struct{}

// LocalOnly is the `local-only` entity.
type LocalOnly struct {
	Local bool `cfg:"local" help:"Unused; the entity itself lets the node run without backends"`
}

// Version is the exclusive `version` entity.
type Version struct{}

// TLSServer is a named `tls-server` configuration.
type TLSServer struct {
	Name                   string   `cfg:"name,required" help:"Name of this TLS server configuration"`
	Cert                   string   `cfg:"cert,required" help:"Server certificate PEM file"`
	Key                    string   `cfg:"key,required" help:"Server private key PEM file"`
	RequireClientCert      bool     `cfg:"requireclientcert" default:"false" help:"Require and verify client certificates"`
	ClientCAs              string   `cfg:"clientcas" help:"CA bundle to verify client certificates with"`
	PinnedClientCert       []string `cfg:"pinnedclientcert" help:"Pinned SHA-256/512 fingerprints of acceptable client certificates"`
	SkipReceptorNamesCheck bool     `cfg:"skipreceptornamescheck" default:"false" help:"Skip the startup check for this node's ID in cert"`
	MinTLS13               bool     `cfg:"mintls13" default:"false" help:"Require TLS 1.3 (else 1.2 with restricted suites)"`
}

// TLSClient is a named `tls-client` configuration.
type TLSClient struct {
	Name                   string   `cfg:"name,required" help:"Name of this TLS client configuration"`
	Cert                   string   `cfg:"cert,required" help:"Client certificate PEM file (empty together with key: none)"`
	Key                    string   `cfg:"key,required" help:"Client private key PEM file"`
	RootCAs                string   `cfg:"rootcas" help:"CA bundle to use instead of the system trust"`
	InsecureSkipVerify     bool     `cfg:"insecureskipverify" default:"false" help:"Accept any server certificate"`
	PinnedServerCert       []string `cfg:"pinnedservercert" help:"Pinned SHA-256/512 fingerprints of acceptable server certificates"`
	SkipReceptorNamesCheck bool     `cfg:"skipreceptornamescheck" default:"false" help:"Skip the startup check for this node's ID in cert"`
	MinTLS13               bool     `cfg:"mintls13" default:"false" help:"Require TLS 1.3 (else 1.2 with restricted suites)"`
}

// TCPListener is a `tcp-listener` backend.
type TCPListener struct {
	Port         int                `cfg:"port,bare,required" help:"Local TCP port to listen on"`
	BindAddr     string             `cfg:"bindaddr" default:"0.0.0.0" help:"Local address to bind to"`
	TLS          string             `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config"`
	Cost         float64            `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	NodeCost     map[string]float64 `cfg:"nodecost" help:"Per-remote-node costs (each > 0)"`
	AllowedPeers []string           `cfg:"allowedpeers" help:"Remote node IDs allowed on this listener"`
}

// TCPPeer is a `tcp-peer` backend.
type TCPPeer struct {
	Address      string   `cfg:"address,bare,required" help:"Remote host:port to connect to"`
	Redial       bool     `cfg:"redial" default:"true" help:"Redial after a lost or failed connection"`
	TLS          string   `cfg:"tls" ref:"tls-client" help:"Name of a tls-client config"`
	Cost         float64  `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	AllowedPeers []string `cfg:"allowedpeers" help:"Remote node IDs allowed on this connection"`
}

// UDPListener is a `udp-listener` backend.
type UDPListener struct {
	Port         int                `cfg:"port,bare,required" help:"Local UDP port to listen on"`
	BindAddr     string             `cfg:"bindaddr" default:"0.0.0.0" help:"Local address to bind to"`
	Cost         float64            `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	NodeCost     map[string]float64 `cfg:"nodecost" help:"Per-remote-node costs (each > 0)"`
	AllowedPeers []string           `cfg:"allowedpeers" help:"Remote node IDs allowed on this listener"`
}

// UDPPeer is a `udp-peer` backend.
type UDPPeer struct {
	Address      string   `cfg:"address,bare,required" help:"Remote host:port to connect to"`
	Redial       bool     `cfg:"redial" default:"true" help:"Redial after a lost or failed connection"`
	Cost         float64  `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	AllowedPeers []string `cfg:"allowedpeers" help:"Remote node IDs allowed on this connection"`
}

// WSListener is a `ws-listener` backend.
type WSListener struct {
	Port         int                `cfg:"port,bare,required" help:"Local TCP port for the HTTP(S) server"`
	BindAddr     string             `cfg:"bindaddr" default:"0.0.0.0" help:"Local address to bind to"`
	Path         string             `cfg:"path" default:"/" help:"HTTP path of the websocket endpoint"`
	TLS          string             `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config (HTTPS)"`
	Cost         float64            `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	NodeCost     map[string]float64 `cfg:"nodecost" help:"Per-remote-node costs (each > 0)"`
	AllowedPeers []string           `cfg:"allowedpeers" help:"Remote node IDs allowed on this listener"`
}

// WSPeer is a `ws-peer` backend.
type WSPeer struct {
	Address      string   `cfg:"address,bare,required" help:"URL (ws:// or wss://) to connect to"`
	Redial       bool     `cfg:"redial" default:"true" help:"Redial after a lost or failed connection"`
	ExtraHeader  string   `cfg:"extraheader" help:"One extra HTTP header, Name:value"`
	TLS          string   `cfg:"tls" ref:"tls-client" help:"Name of a tls-client config (wss)"`
	Cost         float64  `cfg:"cost" default:"1.0" help:"Connection cost (> 0)"`
	AllowedPeers []string `cfg:"allowedpeers" help:"Remote node IDs allowed on this connection"`
}

// ControlService is a `control-service` entity.
type ControlService struct {
	Service     string        `cfg:"service,svc" default:"control" help:"Mesh service name (empty: no mesh listener)"`
	Filename    string        `cfg:"filename" help:"Unix socket path"`
	Permissions int           `cfg:"permissions" default:"0600" help:"Unix socket file mode"`
	TLS         string        `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config for the mesh listener"`
	TCPListen   string        `cfg:"tcplisten" help:"Local TCP port or host:port"`
	TCPTLS      string        `cfg:"tcptls" ref:"tls-server" help:"Name of a tls-server config for the TCP listener (required unless tcplisten is a loopback address)"`
	IdleTimeout time.Duration `cfg:"idletimeout" help:"Close a session that sends no complete request line for this long (default 60s; the first line must come within 10s, or this value if shorter)"`
}

// TCPServer is a `tcp-server` proxy: local TCP listener, dials into the mesh.
type TCPServer struct {
	Port          int    `cfg:"port,required" help:"Local TCP port to listen on"`
	BindAddr      string `cfg:"bindaddr" default:"0.0.0.0" help:"Local address to bind to"`
	RemoteNode    string `cfg:"remotenode,required" help:"Node to connect to (localhost: this node)"`
	RemoteService string `cfg:"remoteservice,required,svc" help:"Mesh service to connect to"`
	TLSServer     string `cfg:"tlsserver" ref:"tls-server" help:"Name of a tls-server config for the local listener"`
	TLSClient     string `cfg:"tlsclient" ref:"tls-client" help:"Name of a tls-client config for the mesh connection"`
}

// TCPClient is a `tcp-client` proxy: mesh listener, dials local TCP.
type TCPClient struct {
	Service   string `cfg:"service,required,svc" help:"Mesh service to listen on"`
	Address   string `cfg:"address,required" help:"Local host:port to connect to"`
	TLSServer string `cfg:"tlsserver" ref:"tls-server" help:"Name of a tls-server config for the mesh listener"`
	TLSClient string `cfg:"tlsclient" ref:"tls-client" help:"Name of a tls-client config for the local connection"`
}

// UDPServer is a `udp-server` proxy.
type UDPServer struct {
	Port          int    `cfg:"port,required" help:"Local UDP port to listen on"`
	BindAddr      string `cfg:"bindaddr" default:"0.0.0.0" help:"Local address to bind to"`
	RemoteNode    string `cfg:"remotenode,required" help:"Destination node"`
	RemoteService string `cfg:"remoteservice,required,svc" help:"Destination datagram service"`
}

// UDPClient is a `udp-client` proxy.
type UDPClient struct {
	Service string `cfg:"service,required,svc" help:"Mesh datagram service to bind"`
	Address string `cfg:"address,required" help:"Local host:port to send to"`
}

// UnixSocketServer is a `unix-socket-server` proxy.
type UnixSocketServer struct {
	Filename      string `cfg:"filename,required" help:"Socket file to create (an existing file is replaced)"`
	Permissions   int    `cfg:"permissions" default:"0600" help:"Socket file mode"`
	RemoteNode    string `cfg:"remotenode,required" help:"Node to connect to"`
	RemoteService string `cfg:"remoteservice,required,svc" help:"Mesh service to connect to"`
	TLS           string `cfg:"tls" ref:"tls-client" help:"Name of a tls-client config for the mesh connection"`
}

// UnixSocketClient is a `unix-socket-client` proxy.
type UnixSocketClient struct {
	Service  string `cfg:"service,required,svc" help:"Mesh service to listen on"`
	Filename string `cfg:"filename,required" help:"Existing socket to connect to"`
	TLS      string `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config for the mesh listener"`
}

// IPRouter is an `ip-router` entity (Linux only upstream).
type IPRouter struct {
	NetworkName string `cfg:"networkname,required,svc" help:"Network name; also the datagram service name"`
	Interface   string `cfg:"interface" help:"Intended tun interface name (ignored upstream)"`
	LocalNet    string `cfg:"localnet,required" help:"Local IPv4 /30 CIDR"`
	Routes      string `cfg:"routes" help:"Comma-separated CIDR subnets to advertise"`
}

// CommandService is the `command-service` entity: a command run on a
// pseudo-terminal for each connection to a mesh service (docs/protocol.md §11.1).
type CommandService struct {
	Service string `cfg:"service,required,svc" help:"Mesh service to listen on"`
	Command string `cfg:"command,required" help:"Command to run for each connection"`
	TLS     string `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config"`
}

// WorkCommand is a `work-command` work type.
type WorkCommand struct {
	WorkType           string `cfg:"worktype,required" help:"Work type name"`
	Command            string `cfg:"command,required" help:"Executable to run"`
	Params             string `cfg:"params" help:"Base command-line arguments"`
	AllowRuntimeParams bool   `cfg:"allowruntimeparams" default:"false" help:"Allow submitters to append arguments"`
	VerifySignature    bool   `cfg:"verifysignature" default:"false" help:"Require signed work submissions"`
}

// WorkKubernetes is a `work-kubernetes` work type.
type WorkKubernetes struct {
	WorkType            string `cfg:"worktype,required" help:"Work type name"`
	Namespace           string `cfg:"namespace" help:"Kubernetes namespace for pods"`
	Image               string `cfg:"image" help:"Container image"`
	Command             string `cfg:"command" help:"Container command"`
	Params              string `cfg:"params" help:"Container arguments"`
	AuthMethod          string `cfg:"authmethod" default:"incluster" help:"kubeconfig, incluster or runtime"`
	KubeConfig          string `cfg:"kubeconfig" help:"Kubeconfig file (authmethod=kubeconfig)"`
	Pod                 string `cfg:"pod" help:"Pod spec file (YAML or JSON)"`
	AllowRuntimeAuth    bool   `cfg:"allowruntimeauth" default:"false" help:"Allow namespace/kubeconfig at submit time"`
	AllowRuntimeCommand bool   `cfg:"allowruntimecommand" default:"false" help:"Allow image/command at submit time"`
	AllowRuntimeParams  bool   `cfg:"allowruntimeparams" default:"false" help:"Allow params/pending timeout at submit time"`
	AllowRuntimePod     bool   `cfg:"allowruntimepod" default:"false" help:"Allow a pod spec at submit time"`
	DeletePodOnRestart  bool   `cfg:"deletepodonrestart" default:"true" help:"Delete a pending pod on restart"`
	StreamMethod        string `cfg:"streammethod" default:"logger" help:"logger or tcp"`
	VerifySignature     bool   `cfg:"verifysignature" default:"false" help:"Require signed work submissions"`
	// Ours (docs/kubernetes.md): the retry schedule of Kubernetes calls and
	// the orphan pod reaper.
	RetryInitial time.Duration `cfg:"retryinitial" default:"250ms" help:"First wait before retrying a failed Kubernetes call (log stream, watch, attach, delete)"`
	RetryMax     time.Duration `cfg:"retrymax" default:"10s" help:"Longest wait between retries of a Kubernetes call"`
	RetryTimeout time.Duration `cfg:"retrytimeout" default:"2m" help:"How long a Kubernetes call is retried before the unit fails"`
	ReapInterval time.Duration `cfg:"reapinterval" default:"5m" help:"How often pods of released units are deleted (0 disables)"`
}

// WorkPython is the deprecated `work-python` work type.
type WorkPython struct {
	WorkType string         `cfg:"worktype,required" help:"Work type name"`
	Plugin   string         `cfg:"plugin,required" help:"Python plugin (entry point) name"`
	Function string         `cfg:"function,required" help:"Exported function to call"`
	Config   map[string]any `cfg:"config" help:"Plugin configuration (map; JSON on the command line)"`
}

// WorkSigning is the `work-signing` entity.
type WorkSigning struct {
	PrivateKey      string        `cfg:"privatekey,bare" help:"RSA private key file to sign work submissions"`
	TokenExpiration time.Duration `cfg:"tokenexpiration" default:"5m" parseerr:"failed to parse TokenExpiration -- valid examples include '1.5h', '30m', '30m10s'" help:"Lifetime of signed tokens"`
}

// WorkVerification is the `work-verification` entity.
type WorkVerification struct {
	PublicKey string `cfg:"publickey,bare" help:"RSA public key file to verify work submissions"`
}

// CommandRunner is the hidden `command-runner` entity: the detached helper
// that runs one command work unit.
type CommandRunner struct {
	Command string `cfg:"command,required" help:"Command to run"`
	Params  string `cfg:"params,required" help:"Command-line arguments"`
	UnitDir string `cfg:"unitdir,required" help:"Unit directory"`
}

// CertInit is the exclusive `cert-init` command.
type CertInit struct {
	CommonName string `cfg:"commonname,required" help:"Common name of the CA certificate"`
	Bits       int    `cfg:"bits,required" help:"RSA key size (0: 2048)"`
	NotBefore  string `cfg:"notbefore" help:"Start of validity, RFC 3339 (default: now)"`
	NotAfter   string `cfg:"notafter" help:"End of validity, RFC 3339 (default: now + 10 years)"`
	OutCert    string `cfg:"outcert,required" help:"File to write the CA certificate to"`
	OutKey     string `cfg:"outkey,required" help:"File to write the CA private key to"`
}

// CertMakeReq is the exclusive `cert-makereq` command.
type CertMakeReq struct {
	CommonName string   `cfg:"commonname,required" help:"Common name of the certificate"`
	Bits       int      `cfg:"bits" help:"RSA key size for a new key"`
	DNSName    []string `cfg:"dnsname" help:"DNS names to add"`
	IPAddress  []string `cfg:"ipaddress" help:"IP addresses to add"`
	NodeID     []string `cfg:"nodeid" help:"Receptor node IDs to add"`
	OutReq     string   `cfg:"outreq,required" help:"File to write the request to"`
	InKey      string   `cfg:"inkey" help:"Existing private key to use"`
	OutKey     string   `cfg:"outkey" help:"File to write a new private key to"`
}

// CertSignReq is the exclusive `cert-signreq` command.
type CertSignReq struct {
	Req       string `cfg:"req,required" help:"Certificate request PEM file"`
	CACert    string `cfg:"cacert,required" help:"CA certificate PEM file"`
	CAKey     string `cfg:"cakey,required" help:"CA private key PEM file"`
	NotBefore string `cfg:"notbefore" help:"Start of validity, RFC 3339 (default: now)"`
	NotAfter  string `cfg:"notafter" help:"End of validity, RFC 3339 (default: now + 1 year)"`
	OutCert   string `cfg:"outcert,required" help:"File to write the certificate to"`
	Verify    bool   `cfg:"verify" default:"false" help:"Sign without asking for confirmation"`
}

// GRPCServer is a `grpc-server` entity: where the gRPC API is served.
type GRPCServer struct {
	Filename    string `cfg:"filename" help:"Unix socket path"`
	Permissions int    `cfg:"permissions" default:"0600" help:"Unix socket file mode"`
	TCPListen   string `cfg:"tcplisten" help:"TCP port or host:port (requires tls; client certificates are required)"`
	TLS         string `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config for the TCP listener"`
}

// HTTPGateway is the `http-gateway` entity: the REST/JSON gateway.
type HTTPGateway struct {
	TCPListen    string   `cfg:"tcplisten,required" help:"TCP port or host:port"`
	TLS          string   `cfg:"tls" ref:"tls-server" help:"Name of a tls-server config (HTTPS; with clientcas, client certificates name callers as cert:NAME)"`
	TokenFile    string   `cfg:"tokenfile" help:"Admin bearer token file; created (mode 0600, random token) if missing. Default: http-gateway.token beside the first control socket, else in the datadir"`
	AllowedHosts []string `cfg:"allowedhosts" help:"Host header names accepted besides localhost, loopback addresses and the listen address (* accepts any: only behind a proxy that checks Host)"`
	AllowOrigins []string `cfg:"alloworigins" help:"Origins (scheme://host[:port]) allowed to call from a browser (CORS); none by default"`
}

// Access is an ` + "`access`" + ` entity: it grants a role to the principals it names.
// Unix-socket peers are admin and mesh nodes operators unless a rule names
// a principal of that kind; everyone else has no role until a rule grants one.
type Access struct {
	Role       string   `cfg:"role,required" help:"reader (status, ping, work list/status/results), operator (+ work submit/cancel/release) or admin (+ reload, connect, signwork, mesh sockets)"`
	Principals []string `cfg:"principals" help:"Who gets the role: uid:N (unix socket peer), cert:NAME (TLS client certificate node ID, else DNS name, else CN), node:ID (mesh node), token:NAME, anonymous; NAME * matches any"`
	TokenFile  string   `cfg:"tokenfile" help:"File whose first line is a bearer token (at least 16 characters) granted this role, as principal token:<file base name>"`
	MaxUnits   int      `cfg:"maxunits" help:"Concurrent unfinished work units per principal (0: 2000)"`
	MaxStdin   int      `cfg:"maxstdin" help:"Bytes of stdin per work submission per principal (0: 1 GiB)"`
}

// WorkAgent is the `work-agent` entity (router side): where the router
// reaches its work agent's gRPC WorkService.
type WorkAgent struct {
	Address   string `cfg:"address,required" help:"unix:///path/to.sock or host:port"`
	TLSClient string `cfg:"tlsclient" ref:"tls-client" help:"Name of a tls-client config (TCP)"`
}

// RouterEndpoint is the `router` entity (worker side): where the work agent
// reaches the router's gRPC MeshService.
type RouterEndpoint struct {
	Address   string `cfg:"address,required" help:"unix:///path/to.sock or host:port"`
	TLSClient string `cfg:"tlsclient" ref:"tls-client" help:"Name of a tls-client config (TCP)"`
}

// Exclusive is a one-shot command that must be the only entity: the binary
// runs it and exits. Exactly one of the pointers is set, except for
// `version`, which has no parameters.
type Exclusive struct {
	Name        string // "version", "cert-init", "cert-makereq" or "cert-signreq"
	CertInit    *CertInit
	CertMakeReq *CertMakeReq
	CertSignReq *CertSignReq
}

// EntityRef records one entity in order of appearance: Index is its position
// in the Config slice of that entity (0 for singletons).
type EntityRef struct {
	Entity string
	Index  int
	Source string // file path, "environment", "implicit" or "" for the command line
}

// Config is a loaded, defaulted and validated configuration.
type Config struct {
	Node      Node
	LogLevel  string // error, warning, info or debug; "info" when log-level is absent
	LogFormat string // text or json; "" means text
	Trace     bool
	LocalOnly bool

	TLSServers []TLSServer
	TLSClients []TLSClient

	TCPListeners []TCPListener
	TCPPeers     []TCPPeer
	UDPListeners []UDPListener
	UDPPeers     []UDPPeer
	WSListeners  []WSListener
	WSPeers      []WSPeer

	ControlServices   []ControlService
	TCPServers        []TCPServer
	TCPClients        []TCPClient
	UDPServers        []UDPServer
	UDPClients        []UDPClient
	UnixSocketServers []UnixSocketServer
	UnixSocketClients []UnixSocketClient
	IPRouters         []IPRouter
	CommandServices   []CommandService

	WorkCommands     []WorkCommand
	WorkKubernetes   []WorkKubernetes
	WorkPython       []WorkPython
	WorkSigning      *WorkSigning
	WorkVerification *WorkVerification
	CommandRunner    *CommandRunner

	GRPCServers []GRPCServer
	HTTPGateway *HTTPGateway
	Metrics     *Metrics
	Access      []Access
	WorkAgent   *WorkAgent
	Router      *RouterEndpoint

	// Exclusive is set when a one-shot command (version, cert-*) was given;
	// nothing else is then set, not even the implicit node.
	Exclusive *Exclusive

	// Help is set by --help/-h or an empty command line; BashCompletion by
	// --bash-completion. Nothing else is loaded then.
	Help           bool
	BashCompletion bool

	// Order lists the entities in order of appearance (phases run in it).
	Order []EntityRef
	// Sources lists the configuration files loaded, in order.
	Sources []string
	// V2 is set by the --config-v2 switch: the files are upstream's v2 form
	// and, as upstream, watched for changes (the process reloads on a change).
	V2 bool
}
