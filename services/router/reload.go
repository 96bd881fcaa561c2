package router

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/receptor-mesh/receptor/services/config"
)

// nonReloadable lists the entities that `reload` does not re-apply
// (docs/protocol.md §12.3): all but the backends and local-only, which are
// restarted from the new file.
func nonReloadable(c *config.Config) []struct {
	name string
	val  any
	n    int
} {
	type item = struct {
		name string
		val  any
		n    int
	}
	return []item{
		{"node", c.Node, 1}, {"log-level", c.LogLevel, 1}, {"trace", c.Trace, 1},
		{"tls-server", c.TLSServers, len(c.TLSServers)}, {"tls-client", c.TLSClients, len(c.TLSClients)},
		{"control-service", c.ControlServices, len(c.ControlServices)},
		{"tcp-server", c.TCPServers, len(c.TCPServers)}, {"tcp-client", c.TCPClients, len(c.TCPClients)},
		{"udp-server", c.UDPServers, len(c.UDPServers)}, {"udp-client", c.UDPClients, len(c.UDPClients)},
		{"unix-socket-server", c.UnixSocketServers, len(c.UnixSocketServers)},
		{"unix-socket-client", c.UnixSocketClients, len(c.UnixSocketClients)},
		{"ip-router", c.IPRouters, len(c.IPRouters)}, {"command-service", c.CommandServices, len(c.CommandServices)},
		{"work-command", c.WorkCommands, len(c.WorkCommands)}, {"work-kubernetes", c.WorkKubernetes, len(c.WorkKubernetes)},
		{"work-python", c.WorkPython, len(c.WorkPython)}, {"work-signing", c.WorkSigning, 1},
		{"work-verification", c.WorkVerification, 1}, {"grpc-server", c.GRPCServers, len(c.GRPCServers)},
		{"http-gateway", c.HTTPGateway, 1}, {"work-agent", c.WorkAgent, 1},
		{"access", c.Access, len(c.Access)},
	}
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

// reload re-reads the configuration file and, when only reloadable
// entities changed, restarts every backend from it (upstream drops all
// sessions; peers see an ordinary teardown and a new handshake).
func (r *Router) reload(ctx context.Context) error {
	if r.opt.Reload == nil {
		return reloadFailed(4, errors.New("no configuration file was provided, reload function not set"))
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	cfg, err := r.opt.Reload()
	if err != nil {
		return reloadFailed(4, err)
	}
	old, cur := nonReloadable(r.cfg), nonReloadable(cfg)
	for i := range old {
		if reflect.DeepEqual(old[i].val, cur[i].val) {
			continue
		}
		if cur[i].n < old[i].n {
			return reloadFailed(3, fmt.Errorf("a non-reloadable config action '%s' was removed. Must restart receptor for changes to take effect", old[i].name))
		}
		return reloadFailed(3, fmt.Errorf("a non-reloadable config action '%s' was modified or added. Must restart receptor for these changes to take effect", old[i].name))
	}
	if _, err := buildBackends(cfg, r.tls, r.log); err != nil {
		return reloadFailed(4, err)
	}
	r.stopBackends()
	if err := r.startBackends(r.runCtx, cfg); err != nil {
		return reloadFailed(4, err)
	}
	r.log.Info("configuration reloaded: backends restarted")
	return nil
}
