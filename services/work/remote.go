package work

// Remote work: a unit whose work runs on another node, reached through the
// node's control service over the mesh (docs/protocol.md §14). This
// file holds the unit's state (its ExtraData), its one background activity,
// restart and adoption; the jobs are in remote_submit.go, remote_monitor.go
// (status), remote_results.go, remote_cancel.go and remote_pool.go (the
// connections to remote control services).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// MeshDialer reaches services on other nodes of the mesh.
// worker.MeshDialer adapts a meshclient.Client (the router's MeshService)
// to it; a program owning a *mesh.Node can wrap stream.Dial the same way.
type MeshDialer interface {
	// Dial opens a stream to service on node, with the named tls-client
	// config ("" = the mesh default). The returned conn must support
	// CloseWrite (half-close), as mesh streams do.
	Dial(ctx context.Context, node, service, tlsClientName string) (net.Conn, error)
	NodeID() string
}

const (
	controlService = "control"
	// statusInterval is how often a remote unit's status is asked for;
	// upstream peers offer no push, so this is the protocol.
	statusInterval = time.Second
)

// remoteRetry is the schedule of every retry towards a remote node
// (submit, status, results, cancel): 1 s growing ×1.5 up to 60 s.
var remoteRetry = backoff.Policy{Initial: time.Second, Max: 60 * time.Second, Factor: 1.5}

// remoteExtra is a remote unit's ExtraData, member order as upstream.
type remoteExtra struct {
	RemoteNode     string            `json:"RemoteNode"`
	RemoteWorkType string            `json:"RemoteWorkType"`
	RemoteParams   map[string]string `json:"RemoteParams"`
	RemoteUnitID   string            `json:"RemoteUnitID"`
	RemoteStarted  bool              `json:"RemoteStarted"`
	LocalCancelled bool              `json:"LocalCancelled"`
	LocalReleased  bool              `json:"LocalReleased"`
	SignWork       bool              `json:"SignWork"`
	TLSClient      string            `json:"TLSClient"`
	Expiration     time.Time         `json:"Expiration"`
}

func parseRemoteExtra(raw json.RawMessage) (remoteExtra, error) {
	var ex remoteExtra
	if len(raw) == 0 {
		return ex, errors.New("remote unit has no ExtraData")
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		return ex, fmt.Errorf("parsing remote unit ExtraData: %w", err)
	}
	return ex, nil
}

// redactRemoteExtra removes secret_* params from replies; the status file
// keeps them.
func redactRemoteExtra(raw json.RawMessage) json.RawMessage {
	ex, err := parseRemoteExtra(raw)
	if err != nil {
		return raw
	}
	for k := range ex.RemoteParams {
		if isSecret(k) {
			delete(ex.RemoteParams, k)
		}
	}
	b, err := json.Marshal(ex)
	if err != nil {
		return raw
	}
	return b
}

func isSecret(key string) bool { return strings.HasPrefix(strings.ToLower(key), "secret_") }

// connError marks failures to reach the remote control service, which are
// retried in the background; other failures are final.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

func isConnError(err error) bool {
	var ce *connError
	return errors.As(err, &ce)
}

// remoteUnit is the agent's side of a unit running on another node.
type remoteUnit struct {
	a *Agent
	e *entry

	mu     sync.Mutex
	cancel context.CancelFunc // stops the current background activity
	done   chan struct{}      // closed when that activity has ended
}

func (r *remoteUnit) extra() (remoteExtra, unit.Status, error) {
	st, err := r.e.dir.ReadStatus()
	if err != nil {
		return remoteExtra{}, st, err
	}
	ex, err := parseRemoteExtra(st.ExtraData)
	return ex, st, err
}

func (r *remoteUnit) updateExtra(fn func(*remoteExtra)) error {
	var perr error
	_, err := r.e.dir.Update(func(st *unit.Status) {
		ex, err := parseRemoteExtra(st.ExtraData)
		if err != nil {
			perr = err
			return
		}
		fn(&ex)
		b, err := json.Marshal(ex)
		if err != nil {
			perr = err
			return
		}
		st.ExtraData = b
	})
	if err != nil {
		return err
	}
	return perr
}

// background replaces the unit's background activity with fn.
func (r *remoteUnit) background(fn func(ctx context.Context)) {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithCancel(r.a.ctx)
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	r.a.bg.Add(1)
	go func() {
		defer r.a.bg.Done()
		defer close(done)
		defer cancel()
		fn(ctx)
	}()
}

// stop ends the background activity and waits for it.
func (r *remoteUnit) stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// localFinished: complete and every byte is here; or canceled remotely and
// the byte counts match (upstream never ends such streams, quirk Q4 of docs/protocol.md §15.1).
func (r *remoteUnit) localFinished() bool {
	st, err := r.e.dir.ReadStatus()
	if err != nil {
		return true
	}
	size := r.e.dir.StdoutSize()
	return (st.State.Complete() || st.State == unit.Canceled) && size >= st.StdoutSize
}

// signature is the token of a request for ex's remote unit: "" when the
// unit is not signed.
func (r *remoteUnit) signature(ex remoteExtra) (string, error) {
	if !ex.SignWork {
		return "", nil
	}
	return r.a.opts.Signer.Sign(ex.RemoteNode)
}

// restartRemote resumes a remote unit found on disk (docs/protocol.md §14.2 Restart).
func (a *Agent) restartRemote(e *entry, st unit.Status) {
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	ex, err := parseRemoteExtra(st.ExtraData)
	if err != nil {
		a.setStatus(e, unit.Failed, "Failed to restart: "+err.Error())
		return
	}
	switch {
	case !ex.RemoteStarted:
		if !st.State.Complete() {
			a.setStatus(e, unit.Failed, "Failed to restart: remote work had not previously started")
		}
	case ex.LocalReleased || ex.LocalCancelled:
		r.background(func(ctx context.Context) { r.retryCancel(ctx, ex.LocalReleased) })
	case !r.localFinished():
		r.background(r.monitor)
	}
}

// AdoptRemote creates a local remote unit for a unit already running on
// node (remoteUnitID) and follows it like one submitted from here. It
// returns the local unit ID.
func (a *Agent) AdoptRemote(node, remoteUnitID, workType, tlsClient string, signWork bool) (string, error) {
	if a.opts.Mesh == nil {
		return "", newError(ErrRemote, "remote work is not available: no mesh connection", nil)
	}
	if signWork && a.opts.Signer == nil {
		return "", newError(ErrInvalidRequest, "cannot sign work: signing key is empty", nil)
	}
	if !unit.ValidID(remoteUnitID) {
		return "", newError(ErrInvalidRequest, "invalid remote unit ID "+remoteUnitID, nil)
	}
	if tlsClient != "" && (a.opts.KnownTLSClient == nil || !a.opts.KnownTLSClient(tlsClient)) {
		return "", newError(ErrInvalidRequest, "unknown TLS config "+tlsClient, nil)
	}
	raw, err := json.Marshal(remoteExtra{
		RemoteNode: node, RemoteWorkType: workType, RemoteParams: map[string]string{},
		RemoteUnitID: remoteUnitID, RemoteStarted: true, TLSClient: tlsClient, SignWork: signWork,
	})
	if err != nil {
		return "", err
	}
	e, err := a.allocate(RemoteWorkType, raw)
	if err != nil {
		return "", err
	}
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	if err := os.WriteFile(e.dir.Path(unit.StdinFile), nil, 0o600); err != nil {
		return "", fmt.Errorf("adopting remote unit %s: %w", remoteUnitID, err)
	}
	r.background(r.monitor)
	return e.id, nil
}
