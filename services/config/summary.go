package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// SlogLevel maps LogLevel (error, warning, info, debug) to a slog.Level.
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "error":
		return slog.LevelError
	case "warning":
		return slog.LevelWarn
	case "debug":
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// TLSServerByName returns the tls-server config called name.
func (c *Config) TLSServerByName(name string) (*TLSServer, bool) {
	for i := range c.TLSServers {
		if c.TLSServers[i].Name == name {
			return &c.TLSServers[i], true
		}
	}
	return nil, false
}

// TLSClientByName returns the tls-client config called name.
func (c *Config) TLSClientByName(name string) (*TLSClient, bool) {
	for i := range c.TLSClients {
		if c.TLSClients[i].Name == name {
			return &c.TLSClients[i], true
		}
	}
	return nil, false
}

// HasBackends reports whether the node has anything that keeps it in the
// mesh: a listener, a peer or local-only. Upstream exits with "Nothing to do
// - no backends are running." otherwise.
func (c *Config) HasBackends() bool {
	return c.LocalOnly || len(c.TCPListeners)+len(c.TCPPeers)+len(c.UDPListeners)+len(c.UDPPeers)+
		len(c.WSListeners)+len(c.WSPeers) > 0
}

// Summary describes the configuration in a few lines, for a validate mode.
func (c *Config) Summary() string {
	var b strings.Builder
	switch {
	case c.Help:
		return "help requested\n"
	case c.BashCompletion:
		return "bash completion requested\n"
	case c.Exclusive != nil:
		return fmt.Sprintf("one-shot command: %s\n", c.Exclusive.Name)
	}
	if len(c.Sources) > 0 {
		fmt.Fprintf(&b, "sources: %s\n", strings.Join(c.Sources, ", "))
	}
	fmt.Fprintf(&b, "node: id=%s datadir=%s firewallrules=%d maxidleconnectiontimeout=%s\n",
		c.Node.ID, c.Node.DataDir, len(c.Node.FirewallRules), c.Node.MaxIdleConnectionTimeout)
	fmt.Fprintf(&b, "log-level: %s\n", c.LogLevel)
	counts := map[string]int{}
	var order []string
	for _, r := range c.Order {
		if r.Entity == "node" || r.Entity == "log-level" { // both have a line of their own above
			continue
		}
		if counts[r.Entity] == 0 {
			order = append(order, r.Entity)
		}
		counts[r.Entity]++
	}
	for _, e := range order {
		fmt.Fprintf(&b, "%s: %d\n", e, counts[e])
	}
	if !c.HasBackends() {
		b.WriteString("warning: no backends (no listener, peer or local-only)\n")
	}
	return b.String()
}
