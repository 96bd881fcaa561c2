package work

// Remote work, submitting: a remote unit is submitted to the target node's
// control service as an upstream node does (JSON work submit, stdin,
// half-close); an unreachable node is retried in the background until the
// ttl expires.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func (a *Agent) submitRemote(ctx context.Context, req SubmitRequest, stdin io.Reader) (SubmitResult, error) {
	t := a.types[req.WorkType]
	if err := a.checkSignature(t != nil && t.VerifySignature(), req.Auth); err != nil {
		return SubmitResult{}, err
	}
	if a.opts.Mesh == nil {
		return SubmitResult{}, newError(ErrRemote, "remote work is not available: no mesh connection", nil)
	}
	if req.TLSClient != "" && (a.opts.KnownTLSClient == nil || !a.opts.KnownTLSClient(req.TLSClient)) {
		return SubmitResult{}, newError(ErrInvalidRequest, "unknown TLS config "+req.TLSClient, nil)
	}
	if req.TLSClient == "" {
		for k := range req.Params {
			if isSecret(k) {
				return SubmitResult{}, errSecretsNoTLS
			}
		}
	}
	var expiration time.Time
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return SubmitResult{}, invalid(err)
		}
		expiration = time.Now().Add(d)
		if req.SignWork && a.opts.Signer != nil && d > a.opts.Signer.Lifetime() {
			a.log.Warn("remote work ttl exceeds the signing token lifetime", "ttl", d, "lifetime", a.opts.Signer.Lifetime())
		}
	}
	params := req.Params
	if params == nil {
		params = map[string]string{}
	}
	ex := remoteExtra{
		RemoteNode: req.Node, RemoteWorkType: req.WorkType, RemoteParams: params,
		SignWork: req.SignWork, TLSClient: req.TLSClient, Expiration: expiration,
	}
	raw, err := json.Marshal(ex)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("encoding remote unit: %w", err)
	}
	e, err := a.allocate(RemoteWorkType, raw)
	if err != nil {
		return SubmitResult{}, err
	}
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	if err := a.receiveStdin(e, req, stdin); err != nil {
		return SubmitResult{}, err
	}
	a.setStatus(e, unit.Pending, "Starting Worker")
	err = r.start(ctx)
	switch {
	case err == nil:
		r.background(r.monitor)
		return SubmitResult{Result: ResultStarted, UnitID: e.id}, nil
	case isConnError(err):
		a.log.Info("remote node unreachable; retrying in the background", "unit", e.id, "node", req.Node, "err", err)
		r.background(r.retryStart)
		return SubmitResult{Result: ResultSubmitted, UnitID: e.id, Reason: fmt.Sprintf(
			"node %s cannot be reached now (%v); the unit stays Pending and its start is retried in the background until it succeeds or the unit is released", req.Node, err)}, nil
	default:
		a.setStatus(e, unit.Failed, "Error starting worker: "+err.Error())
		return SubmitResult{}, newError(ErrRemote, err.Error(), err)
	}
}

// start submits the unit to the remote node (docs/protocol.md §14.1 steps 1-4).
func (r *remoteUnit) start(ctx context.Context) error {
	ex, _, err := r.extra()
	if err != nil {
		return err
	}
	req := make(map[string]string, len(ex.RemoteParams)+4)
	for k, v := range ex.RemoteParams {
		req[k] = v
	}
	req["node"], req["worktype"], req["tlsclient"] = ex.RemoteNode, ex.RemoteWorkType, ex.TLSClient
	sig, err := r.signature(ex)
	if err != nil {
		return err
	}
	if sig != "" {
		req["signature"] = sig
	}
	c, err := r.dial(ctx, ex)
	if err != nil {
		return err
	}
	defer c.Close()
	remoteID, err := c.StartSubmit(ctx, req)
	if re := (*client.RemoteError)(nil); errors.As(err, &re) && apierr.Retryable(re.Message) {
		// The node is there but cannot run work for a while (its work
		// agent is away): nothing was created, try again later.
		return &connError{err}
	}
	if err != nil {
		return err
	}
	if err := r.updateExtra(func(x *remoteExtra) { x.RemoteUnitID = remoteID }); err != nil {
		return err
	}
	stdin, err := os.Open(r.e.dir.Path(unit.StdinFile))
	if err != nil {
		return fmt.Errorf("error opening stdin file: %w", err)
	}
	err = c.SendPayload(ctx, stdin)
	stdin.Close()
	if err != nil {
		return fmt.Errorf("error sending stdin file: %w", err)
	}
	line, err := c.ReadReply(ctx)
	if err != nil && line == "" {
		err = fmt.Errorf("read error reading from %s: %w", ex.RemoteNode, err)
		// The remote has our stdin and most likely started the unit; only
		// the reply was lost (e.g. the peer tore the connection down
		// before our side had read it). Submitting again would run the
		// work twice, so ask whether the unit exists instead.
		if !r.remoteUnitExists(ctx, ex, remoteID) {
			return err
		}
		r.a.log.Warn("remote submit reply lost; the remote unit exists, following it", "unit", r.e.id, "node", ex.RemoteNode, "remote_unit", remoteID, "err", err)
		line = ""
	}
	if _, msg, ok := strings.Cut(line, "ERROR: "); ok {
		return fmt.Errorf("error from remote: %s", strings.TrimRight(msg, "\n"))
	}
	return r.updateExtra(func(x *remoteExtra) { x.RemoteStarted = true })
}

// remoteUnitExists asks the remote node, on a new connection, for the
// status of unit id; false when it does not know the unit or cannot be
// asked.
func (r *remoteUnit) remoteUnitExists(ctx context.Context, ex remoteExtra, id string) bool {
	c, err := r.dial(ctx, ex)
	if err != nil {
		return false
	}
	defer c.Close()
	line, err := c.WorkStatus(ctx, id)
	if err != nil {
		return false
	}
	var st struct{ State *unit.State }
	return json.Unmarshal([]byte(line), &st) == nil && st.State != nil
}

// retryStart retries the submission with backoff until it succeeds, the
// ttl expires, or a TLS failure makes retrying pointless.
func (r *remoteUnit) retryStart(ctx context.Context) {
	delays := remoteRetry.Start()
	for {
		ex, _, err := r.extra()
		if err != nil {
			r.a.log.Error("remote unit", "unit", r.e.id, "err", err)
			return
		}
		wait := delays.Next()
		if !ex.Expiration.IsZero() {
			left := time.Until(ex.Expiration)
			if left <= 0 {
				r.a.setStatus(r.e, unit.Failed, "Work unit expired on "+ex.Expiration.Local().Format("Mon Jan 2 15:04:05"))
				return
			}
			wait = min(wait, left)
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
		if !ex.Expiration.IsZero() && time.Now().After(ex.Expiration) {
			continue
		}
		err = r.start(ctx)
		switch {
		case err == nil:
			r.monitor(ctx)
			return
		case strings.Contains(err.Error(), "CRYPTO_ERROR"):
			r.a.setStatus(r.e, unit.Failed, "TLS error connecting to remote service: "+err.Error())
			return
		case !isConnError(err):
			r.a.setStatus(r.e, unit.Failed, "Error starting worker: "+err.Error())
			return
		}
	}
}
