// Package tlsstore builds a node's named TLS configurations (package
// tlsconf) from its tls-server and tls-client entities (package config),
// and keeps them current: Reload re-reads their files on request and Watch
// whenever one of them changes. It is the one place where the two packages
// meet, so each stays free of the other.
package tlsstore

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/dirwatch"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// FromConfig builds the store of cfg's TLS entities for cfg's node ID; it
// reads and checks every certificate and key.
func FromConfig(cfg *config.Config, log *slog.Logger) (*tlsconf.Store, error) {
	servers, clients := options(cfg)
	return tlsconf.NewStore(cfg.Node.ID, servers, clients, log)
}

// Reload re-reads the certificates, keys and CA bundles of cfg's TLS
// entities into store (built by FromConfig from entities with the same
// names and options). On an error store keeps what it had.
func Reload(store *tlsconf.Store, cfg *config.Config, log *slog.Logger) error {
	servers, clients := options(cfg)
	changed, err := store.Reload(servers, clients)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		log.Info("TLS certificates reloaded; new connections use them, established ones continue", "configs", changed)
	}
	return nil
}

func options(cfg *config.Config) ([]tlsconf.ServerOptions, []tlsconf.ClientOptions) {
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
	return servers, clients
}

// files lists the certificate, key and CA files of cfg's TLS entities.
func files(cfg *config.Config) []string {
	var fs []string
	for _, s := range cfg.TLSServers {
		fs = append(fs, s.Cert, s.Key, s.ClientCAs)
	}
	for _, c := range cfg.TLSClients {
		fs = append(fs, c.Cert, c.Key, c.RootCAs)
	}
	fs = slices.DeleteFunc(fs, func(f string) bool { return f == "" })
	slices.Sort(fs)
	return slices.Compact(fs)
}

// Settle is how long the directories of the TLS files must stay quiet
// after a change before Watch re-reads them: a renewal writes the
// certificate and the key one after the other, and a half-written pair is
// refused.
const Settle = 500 * time.Millisecond

// Watch re-reads cfg's TLS files into store whenever one of the
// directories holding them changes (inotify), until ctx ends; the returned
// stop waits for it. A pair that does not load (a key not yet written) is
// logged and kept for the next change. Without TLS entities it does
// nothing.
func Watch(ctx context.Context, store *tlsconf.Store, cfg *config.Config, log *slog.Logger) (stop func(), err error) {
	fs := files(cfg)
	if len(fs) == 0 {
		return func() {}, nil
	}
	w, err := dirwatch.New(log)
	if err != nil {
		return nil, err
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	dirs := map[string]bool{}
	for _, f := range fs {
		// Also the directory a symlinked file points into: Kubernetes
		// swaps a Secret's files by replacing the ..data link.
		for _, d := range []string{filepath.Dir(f), resolvedDir(f)} {
			if d == "" || dirs[d] {
				continue
			}
			dirs[d] = true
			if err := w.Add(d, notify); err != nil {
				_ = w.Close()
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			for settled := false; !settled; {
				select {
				case <-ctx.Done():
					return
				case <-changed:
				case <-time.After(Settle):
					settled = true
				}
			}
			if err := Reload(store, cfg, log); err != nil {
				log.Warn("TLS files changed but do not load; keeping the previous certificates", "err", err)
			}
		}
	})
	return func() {
		_ = w.Close()
		cancel()
		wg.Wait()
	}, nil
}

func resolvedDir(f string) string {
	p, err := filepath.EvalSymlinks(f)
	if err != nil {
		return ""
	}
	return filepath.Dir(p)
}
