// Package tlsstore builds a node's named TLS configurations (package
// tlsconf) from its tls-server and tls-client entities (package config).
// It is the one place where the two packages meet, so each stays free of
// the other.
package tlsstore

import (
	"log/slog"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// FromConfig builds the store of cfg's TLS entities for cfg's node ID; it
// reads and checks every certificate and key.
func FromConfig(cfg *config.Config, log *slog.Logger) (*tlsconf.Store, error) {
	servers := make([]tlsconf.ServerOptions, 0, len(cfg.TLSServers))
	for _, s := range cfg.TLSServers {
		servers = append(servers, tlsconf.ServerOptions{
			Name: s.Name, Cert: s.Cert, Key: s.Key, RequireClientCert: s.RequireClientCert,
			ClientCAs: s.ClientCAs, PinnedClientCert: s.PinnedClientCert,
			SkipReceptorNamesCheck: s.SkipReceptorNamesCheck, MinTLS13: s.MinTLS13,
		})
	}
	clients := make([]tlsconf.ClientOptions, 0, len(cfg.TLSClients))
	for _, c := range cfg.TLSClients {
		clients = append(clients, tlsconf.ClientOptions{
			Name: c.Name, Cert: c.Cert, Key: c.Key, RootCAs: c.RootCAs, InsecureSkipVerify: c.InsecureSkipVerify,
			PinnedServerCert: c.PinnedServerCert, SkipReceptorNamesCheck: c.SkipReceptorNamesCheck, MinTLS13: c.MinTLS13,
		})
	}
	return tlsconf.NewStore(cfg.Node.ID, servers, clients, log)
}
