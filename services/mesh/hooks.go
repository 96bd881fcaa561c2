package mesh

import (
	"context"
	"fmt"
	"slices"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
)

// controlServiceTag is the advertisement tag of control services; only
// their ads carry the node's work commands (docs/protocol.md §4.5).
const controlServiceTag = "Control Service"

// AddBackendContext starts b like AddBackend, but under ctx: cancelling
// ctx stops this backend and closes its sessions without touching the
// others (the router's reload replaces backends this way). The returned
// wait blocks until the backend's goroutines have ended.
func (n *Node) AddBackendContext(ctx context.Context, b backends.Backend, opts BackendOptions) (wait func(), err error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("add %s backend: %w", b.Kind(), err)
	}
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	bctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel) // the node's shutdown stops it too
	kind := b.Kind()
	w, err := b.Start(bctx, func(s backends.Session) { n.runSession(s, kind, opts) })
	if err != nil {
		stop()
		cancel()
		return nil, fmt.Errorf("start %s backend: %w", kind, err)
	}
	n.backendMu.Lock()
	n.waits = append(n.waits, w)
	n.backendMu.Unlock()
	return func() {
		w()
		stop()
		cancel()
	}, nil
}

// SetWorkCommands sets the work types advertised with this node's control
// services (the work agent registers them through the router) and floods
// the updated advertisements at once.
func (n *Node) SetWorkCommands(cmds []WorkCommand) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.workCmds = slices.Clone(cmds)
	for service, ad := range n.ownAds {
		n.ownAds[service] = n.withWorkCommandsLocked(ad)
	}
	n.advertiseLocked(nil)
}

// WorkCommands returns the work types set with SetWorkCommands.
func (n *Node) WorkCommands() []WorkCommand {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.workCmds)
}

// withWorkCommandsLocked gives a control service ad the node's work
// commands once some were set; until then the listener's own stand.
func (n *Node) withWorkCommandsLocked(ad ServiceAd) ServiceAd {
	if ad.Tags["type"] == controlServiceTag && n.workCmds != nil {
		// No work types (none, or withdrawn while the work agent is away)
		// are sent as null, as upstream does.
		ad.WorkCommands = nil
		if len(n.workCmds) > 0 {
			ad.WorkCommands = slices.Clone(n.workCmds)
		}
	}
	return ad
}
