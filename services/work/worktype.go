package work

import (
	"context"
	"encoding/json"
	"time"

	"github.com/receptor-mesh/receptor/services/work/command"
	"github.com/receptor-mesh/receptor/services/work/kube"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// WorkType is a kind of unit the agent can run locally.
type WorkType interface {
	Name() string
	// VerifySignature reports whether submissions of this type from
	// untrusted connections must be signed.
	VerifySignature() bool
	// Prepare validates the submit params before anything is allocated
	// and returns the unit's initial ExtraData.
	Prepare(params map[string]string) (json.RawMessage, error)
	// Start launches the unit in dir (stdin is in place).
	Start(ctx context.Context, dir unit.Dir) (Execution, error)
	// Restart re-attaches to a unit found on disk at startup; a nil
	// Execution means there is nothing to follow.
	Restart(dir unit.Dir, st unit.Status) (Execution, error)
}

// Redactor is a WorkType whose units' ExtraData holds secrets: replies
// (status, list, watch) show Redact's result instead of the stored value.
type Redactor interface {
	Redact(extra json.RawMessage) json.RawMessage
}

// Reaper is a WorkType that leaves things outside the data directory
// (Kubernetes pods): Reap removes those whose unit is gone (live reports
// whether a unit ID still exists). The agent calls it once its units are
// recovered, then every ReapInterval (not at all if that is not positive).
type Reaper interface {
	Reap(ctx context.Context, live func(unitID string) bool) error
	ReapInterval() time.Duration
}

// Execution is a started unit that the agent follows.
type Execution interface {
	// Done is closed when the unit's process has ended.
	Done() <-chan struct{}
	// Cancel stops the unit and records it as canceled.
	Cancel(ctx context.Context) error
	// Detach stops following the unit without affecting it.
	Detach()
}

// CommandType adapts a work-command type to the agent.
func CommandType(t *command.Type) WorkType { return commandType{t} }

type commandType struct{ *command.Type }

func (c commandType) Start(ctx context.Context, dir unit.Dir) (Execution, error) {
	e, err := c.Type.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (c commandType) Restart(dir unit.Dir, st unit.Status) (Execution, error) {
	e, err := c.Type.Restart(dir, st)
	if e == nil {
		return nil, err
	}
	return e, err
}

// KubeType adapts a work-kubernetes type to the agent.
func KubeType(t *kube.Type) WorkType { return kubeType{t} }

type kubeType struct{ *kube.Type }

func (k kubeType) Start(ctx context.Context, dir unit.Dir) (Execution, error) {
	e, err := k.Type.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (k kubeType) Restart(dir unit.Dir, st unit.Status) (Execution, error) {
	e, err := k.Type.Restart(dir, st)
	if e == nil {
		return nil, err
	}
	return e, err
}
