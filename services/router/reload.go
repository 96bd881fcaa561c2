package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/tlsstore"
)

// nonReloadable lists the entities that `reload` does not re-apply
// (docs/protocol.md §12.3): all but the backends and local-only. Each val
// is an entity struct, a pointer to one, or a slice of them.
func nonReloadable(c *config.Config) []struct {
	name string
	val  any
} {
	type item = struct {
		name string
		val  any
	}
	return []item{
		{"node", c.Node}, {"log-level", c.LogLevel}, {"trace", c.Trace},
		{"tls-server", c.TLSServers}, {"tls-client", c.TLSClients},
		{"control-service", c.ControlServices},
		{"tcp-server", c.TCPServers}, {"tcp-client", c.TCPClients},
		{"udp-server", c.UDPServers}, {"udp-client", c.UDPClients},
		{"unix-socket-server", c.UnixSocketServers}, {"unix-socket-client", c.UnixSocketClients},
		{"ip-router", c.IPRouters}, {"command-service", c.CommandServices},
		{"work-command", c.WorkCommands}, {"work-kubernetes", c.WorkKubernetes},
		{"work-python", c.WorkPython}, {"work-signing", c.WorkSigning},
		{"work-verification", c.WorkVerification}, {"grpc-server", c.GRPCServers},
		{"http-gateway", c.HTTPGateway}, {"work-agent", c.WorkAgent},
		{"access", c.Access},
	}
}

// entityKeys encodes each entity of val (see nonReloadable) as canonical
// JSON (struct fields in order, map keys sorted), sorted: two values with
// the same entities in any order give the same keys.
func entityKeys(val any) []string {
	v := reflect.ValueOf(val)
	var keys []string
	switch {
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			keys = append(keys, entityKey(v.Index(i).Interface()))
		}
	case v.Kind() == reflect.Pointer && v.IsNil():
	default:
		keys = append(keys, entityKey(val))
	}
	slices.Sort(keys)
	return keys
}

func entityKey(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Entity structs hold strings, numbers, lists and maps only.
		panic(fmt.Sprintf("router: encoding %T: %v", v, err))
	}
	return string(b)
}

// compareNonReloadable fails with upstream's texts when an entity other
// than a backend or local-only was added, changed or removed between old
// and cur. The order of entities does not matter.
func compareNonReloadable(old, cur *config.Config) error {
	was, now := nonReloadable(old), nonReloadable(cur)
	for i := range was {
		a, b := entityKeys(was[i].val), entityKeys(now[i].val)
		if slices.Equal(a, b) {
			continue
		}
		// Removed: an entity of the old configuration is missing (upstream
		// reports additions and changes first).
		removed := len(b) < len(a)
		for _, k := range b {
			if !slices.Contains(a, k) {
				removed = false
			}
		}
		if removed {
			return fmt.Errorf("a non-reloadable config action '%s' was removed. Must restart receptor for changes to take effect", was[i].name)
		}
		return fmt.Errorf("a non-reloadable config action '%s' was modified or added. Must restart receptor for these changes to take effect", was[i].name)
	}
	return nil
}

// reloadError is a failed reload. Error() is upstream's
// "<text> ERRORCODE <n>", which the control protocol sends as is; the gRPC
// API reports text and code apart (apierr.ReloadFailed).
type reloadError struct {
	err  error
	code int // receptorctl's exit code: 3 a non-reloadable entity changed, 4 no or unusable configuration
}

func (e *reloadError) Error() string { return fmt.Sprintf("%v ERRORCODE %d", e.err, e.code) }
func (e *reloadError) Unwrap() error { return e.err }

func reloadFailed(code int, err error) error { return &reloadError{err: err, code: code} }

// reload re-reads every configuration source the process started with
// (config.Reloader) and, when only reloadable entities changed, re-reads
// the certificates and keys of the TLS entities and applies the backend
// changes: backends that are gone or changed stop (their sessions end),
// new or changed ones start, and unchanged ones keep running with their
// sessions. Upstream restarts every backend instead.
func (r *Router) reload(ctx context.Context) error {
	if r.opt.Reload == nil || r.opt.Reload.Load == nil {
		return reloadFailed(4, errors.New("no configuration file was provided, reload function not set"))
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	cfg, err := r.opt.Reload.Load()
	if err != nil {
		return reloadFailed(4, err)
	}
	if err := compareNonReloadable(r.cfg, cfg); err != nil {
		return reloadFailed(3, err)
	}
	if err := r.reloadCertificates(cfg); err != nil {
		return reloadFailed(4, err)
	}
	specs, err := buildBackends(cfg, r.tls, r.log)
	if err != nil {
		return reloadFailed(4, err)
	}
	kept, stopped, started, err := r.replaceBackends(cfg, specs)
	if err != nil {
		return reloadFailed(4, err)
	}
	r.log.Info("configuration reloaded", "backends_kept", kept, "backends_stopped", stopped, "backends_started", started)
	return nil
}

// reloadCertificates re-reads the certificates, keys and CA bundles of
// cfg's TLS entities (their names and options are those the router runs
// with: compareNonReloadable checked).
func (r *Router) reloadCertificates(cfg *config.Config) error {
	return tlsstore.Reload(r.tls, cfg, r.log)
}

// serveReloadRequests reloads on every request of the Reloader (SIGHUP, a
// changed --config-v2 file) until ctx ends, logging the outcome.
func (r *Router) serveReloadRequests(ctx context.Context) {
	if r.opt.Reload == nil || r.opt.Reload.Requests == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.opt.Reload.Requests:
			if err := r.reload(ctx); err != nil {
				r.log.Warn("Reload not successful", "err", err)
			}
		}
	}
}
