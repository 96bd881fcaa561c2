package config

import (
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/loopback"
)

// MinIdleConnectionTimeout is the smallest accepted
// node maxidleconnectiontimeout: peers send routing updates only every 10 s.
const MinIdleConnectionTimeout = 21 * time.Second

func (n *Node) validate(l *Loader) error {
	if n.ID == "" {
		host, err := l.hostname()
		if err != nil {
			return perr("id", "no node ID specified and the host name is unknown: %v", err)
		}
		lc := strings.ToLower(host)
		if lc == "" || lc == "localhost" || strings.HasPrefix(lc, "localhost.") {
			return errors.New("no node ID specified and local host name is localhost")
		}
		n.ID = host
	}
	if strings.ToLower(n.ID) == "localhost" {
		return perr("id", "node ID \"localhost\" is reserved")
	}
	if n.MaxIdleConnectionTimeout < MinIdleConnectionTimeout {
		return perr("maxidleconnectiontimeout", "%q is below the minimum of 21s", n.MaxIdleConnectionTimeout.String())
	}
	return nil
}

func (ll *LogLevel) validate(*Loader) error {
	lv := strings.ToLower(ll.Level)
	switch lv {
	case "error", "warning", "info", "debug":
		ll.Level = lv
		return nil
	}
	return perr("level", "%q is not a valid log level name", ll.Level)
}

func (t *TLSServer) validate(*Loader) error {
	return checkFingerprints("pinnedclientcert", t.PinnedClientCert)
}

func (t *TLSClient) validate(*Loader) error {
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("cert and key must both be supplied or neither")
	}
	return checkFingerprints("pinnedservercert", t.PinnedServerCert)
}

// checkFingerprints accepts hex SHA-256 or SHA-512 digests, colons allowed.
func checkFingerprints(param string, fps []string) error {
	for _, fp := range fps {
		b, err := hex.DecodeString(strings.ReplaceAll(fp, ":", ""))
		if err != nil || (len(b) != 32 && len(b) != 64) {
			return perr(param, "%q is not a hex SHA-256 or SHA-512 fingerprint", fp)
		}
	}
	return nil
}

func checkPort(param string, port int) error {
	if port < 0 || port > 65535 {
		return perr(param, "%d is out of range 0-65535", port)
	}
	return nil
}

func checkCost(cost float64, nodeCost map[string]float64) error {
	if cost <= 0 {
		return perr("cost", "%v must be greater than 0", cost)
	}
	for _, k := range sortedKeys(nodeCost) {
		if nodeCost[k] <= 0 {
			return perr("nodecost", "%s: %v must be greater than 0", k, nodeCost[k])
		}
	}
	return nil
}

func checkHostPort(param, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return perr(param, "%q is not host:port", addr)
	}
	return nil
}

func checkPerm(param string, perm int) error {
	if perm < 0 || perm > 0o7777 {
		return perr(param, "%#o is not a file mode", perm)
	}
	return nil
}

// checkListen accepts "port" or "host:port", as upstream's tcplisten.
func checkListen(param, s string) error {
	if s == "" {
		return nil
	}
	if strings.Contains(s, ":") {
		return checkHostPort(param, s)
	}
	if n, err := strconv.Atoi(s); err != nil || n < 0 || n > 65535 {
		return perr(param, "%q is not a port or host:port", s)
	}
	return nil
}

// checkEndpoint accepts unix:///path/to.sock or host:port.
func checkEndpoint(param, s string) error {
	if rest, ok := strings.CutPrefix(s, "unix://"); ok {
		if !strings.HasPrefix(rest, "/") || len(rest) < 2 {
			return perr(param, "%q must be unix:///absolute/path or host:port", s)
		}
		return nil
	}
	if err := checkHostPort(param, s); err != nil {
		return perr(param, "%q must be unix:///absolute/path or host:port", s)
	}
	return nil
}

func (t *TCPListener) validate(*Loader) error {
	if err := checkPort("port", t.Port); err != nil {
		return err
	}
	return checkCost(t.Cost, t.NodeCost)
}

func (t *TCPPeer) validate(*Loader) error {
	if err := checkHostPort("address", t.Address); err != nil {
		return err
	}
	return checkCost(t.Cost, nil)
}

func (u *UDPListener) validate(*Loader) error {
	if err := checkPort("port", u.Port); err != nil {
		return err
	}
	return checkCost(u.Cost, u.NodeCost)
}

func (u *UDPPeer) validate(*Loader) error {
	if err := checkHostPort("address", u.Address); err != nil {
		return err
	}
	return checkCost(u.Cost, nil)
}

func (w *WSListener) validate(*Loader) error {
	if err := checkPort("port", w.Port); err != nil {
		return err
	}
	return checkCost(w.Cost, w.NodeCost)
}

func (w *WSPeer) validate(*Loader) error {
	u, err := url.Parse(w.Address)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return perr("address", "%q is not a ws:// or wss:// URL", w.Address)
	}
	if w.ExtraHeader != "" && !strings.Contains(w.ExtraHeader, ":") {
		return perr("extraheader", "%q is not Name:value", w.ExtraHeader)
	}
	return checkCost(w.Cost, nil)
}

func (c *ControlService) validate(*Loader) error {
	if c.Service == "" && c.Filename == "" && c.TCPListen == "" {
		return errors.New("no listeners specified")
	}
	if err := checkPerm("permissions", c.Permissions); err != nil {
		return err
	}
	if c.IdleTimeout < 0 {
		return perr("idletimeout", "%q is negative", c.IdleTimeout.String())
	}
	if err := checkListen("tcplisten", c.TCPListen); err != nil {
		return err
	}
	// Plaintext control on the network would let anyone who reaches the
	// port run commands and work.
	if c.TCPListen != "" && c.TCPTLS == "" {
		if host, err := loopback.ListenHost(c.TCPListen); err != nil || !loopback.Host(host) {
			return perr("tcplisten", "%q: refusing to serve the control service without TLS on a non-loopback address; "+
				"set tcptls to a tls-server name, or listen on 127.0.0.1", c.TCPListen)
		}
	}
	return nil
}

func (t *TCPServer) validate(*Loader) error { return checkPort("port", t.Port) }
func (u *UDPServer) validate(*Loader) error { return checkPort("port", u.Port) }
func (t *TCPClient) validate(*Loader) error { return checkHostPort("address", t.Address) }
func (u *UDPClient) validate(*Loader) error { return checkHostPort("address", u.Address) }

func (u *UnixSocketServer) validate(*Loader) error { return checkPerm("permissions", u.Permissions) }

func (r *IPRouter) validate(*Loader) error {
	p, err := netip.ParsePrefix(r.LocalNet)
	if err != nil || !p.Addr().Is4() || p.Bits() != 30 {
		return perr("localnet", "%q is not an IPv4 /30 CIDR", r.LocalNet)
	}
	if r.Routes != "" {
		for _, rt := range strings.Split(r.Routes, ",") {
			if _, err := netip.ParsePrefix(rt); err != nil {
				return perr("routes", "%q is not a CIDR", rt)
			}
		}
	}
	return nil
}

func (k *WorkKubernetes) validate(*Loader) error {
	am := strings.ToLower(k.AuthMethod)
	switch am {
	case "kubeconfig", "incluster", "runtime":
	default:
		return perr("authmethod", "invalid AuthMethod: %s", k.AuthMethod)
	}
	if k.Namespace == "" && am != "kubeconfig" && !k.AllowRuntimeAuth {
		return errors.New("must provide namespace when AuthMethod is not kubeconfig")
	}
	if k.KubeConfig != "" && am != "kubeconfig" {
		return perr("kubeconfig", "can only provide KubeConfig when AuthMethod=kubeconfig")
	}
	if k.Pod != "" && (k.Image != "" || k.Command != "" || k.Params != "") {
		return errors.New("can only provide Pod when Image, Command, and Params are empty")
	}
	if k.Image == "" && k.Pod == "" && !k.AllowRuntimeCommand && !k.AllowRuntimePod {
		return errors.New("must specify a container image to run")
	}
	switch strings.ToLower(k.StreamMethod) {
	case "logger", "tcp":
	default:
		return perr("streammethod", "stream mode must be logger or tcp")
	}
	return nil
}

func checkTime(param, s string) error {
	if s == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return perr(param, "%q is not an RFC 3339 date/time", s)
	}
	return nil
}

func (c *CertInit) validate(*Loader) error {
	if c.Bits < 0 {
		return perr("bits", "%d is negative", c.Bits)
	}
	if err := checkTime("notbefore", c.NotBefore); err != nil {
		return err
	}
	return checkTime("notafter", c.NotAfter)
}

func (c *CertMakeReq) validate(*Loader) error {
	switch {
	case c.InKey == "" && c.OutKey == "":
		return errors.New("must provide either InKey or OutKey")
	case c.InKey != "" && c.OutKey != "":
		return errors.New("cannot use both InKey and OutKey")
	case c.InKey != "" && c.Bits != 0:
		return errors.New("cannot specify key bits when reading an already-existing key")
	case c.OutKey != "" && c.Bits == 0:
		return errors.New("must specify key bits when creating a new key")
	case c.Bits < 0:
		return perr("bits", "%d is negative", c.Bits)
	}
	for _, ip := range c.IPAddress {
		if net.ParseIP(ip) == nil {
			return perr("ipaddress", "invalid IP address: %s", ip)
		}
	}
	return nil
}

func (c *CertSignReq) validate(*Loader) error {
	if err := checkTime("notbefore", c.NotBefore); err != nil {
		return err
	}
	return checkTime("notafter", c.NotAfter)
}

func (g *GRPCServer) validate(*Loader) error {
	if g.Filename == "" && g.TCPListen == "" {
		return errors.New("no listeners specified (set filename and/or tcplisten)")
	}
	if err := checkPerm("permissions", g.Permissions); err != nil {
		return err
	}
	return checkListen("tcplisten", g.TCPListen)
}

func (h *HTTPGateway) validate(*Loader) error {
	if err := checkListen("tcplisten", h.TCPListen); err != nil {
		return err
	}
	for _, o := range h.AllowOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return perr("alloworigins", "origin %q: want scheme://host[:port]", o)
		}
	}
	return nil
}

func (a *Access) validate(*Loader) error {
	if _, err := authz.ParseRole(a.Role); err != nil {
		return perr("role", "%v", err)
	}
	if len(a.Principals) == 0 && a.TokenFile == "" {
		return errors.New("names no principals and no tokenfile")
	}
	for _, p := range a.Principals {
		pr, err := authz.ParsePrincipal(p)
		if err != nil || pr.Kind == authz.KindInternal {
			return perr("principals", "%q: want uid:N, cert:NAME, node:ID, token:NAME or anonymous", p)
		}
	}
	if a.MaxUnits < 0 {
		return perr("maxunits", "cannot be negative")
	}
	if a.MaxStdin < 0 {
		return perr("maxstdin", "cannot be negative")
	}
	return nil
}

func (w *WorkAgent) validate(*Loader) error      { return checkEndpoint("address", w.Address) }
func (r *RouterEndpoint) validate(*Loader) error { return checkEndpoint("address", r.Address) }
