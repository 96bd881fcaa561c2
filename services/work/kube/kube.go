// Package kube is the work-kubernetes work type: every unit runs as one pod
// (docs/kubernetes.md). The unit's stdin is sent to the pod's `worker`
// container through the attach subresource, the container's log is copied
// into the unit's stdout, and the unit's state follows the pod.
//
// What it keeps from upstream Receptor: the entity and runtime parameters
// with their permission rules and error texts, pod naming (generateName
// `<worktype>-`), the Detail strings, and the unit's ExtraData layout. What
// it does differently, because upstream loses work there:
//
//   - completion is decided from the pod's status (a watch), never from the
//     end of the log stream: a log stream that ends early is reopened;
//   - the log is requested with timestamps and a broken stream resumes after
//     the last line written, exactly: no line lost or written twice (see
//     cursor);
//   - every retry follows one bounded backoff (Config.Retry), configurable;
//   - the pod's name, UID and the log cursor live in the unit's status file,
//     so a restarted agent re-attaches to a running pod and finishes the unit;
//   - pods carry the unit's ID and node as labels: pods whose unit is gone
//     are deleted (Type.Reap), and a pod created just before a crash is found;
//   - a pod that never starts fails the unit after pod_pending_timeout with
//     the reason read from its events.
//
// work.KubeType adapts a Type to the work agent.
package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/command"
)

// Authentication methods (entity parameter authmethod).
const (
	AuthKubeconfig = "kubeconfig"
	AuthInCluster  = "incluster"
	AuthRuntime    = "runtime"
)

// Stream methods (entity parameter streammethod).
const (
	StreamLogger = "logger"
	StreamTCP    = "tcp"
)

// Config is one work-kubernetes entity.
type Config struct {
	WorkType            string
	Namespace           string
	Image               string
	Command             string
	Params              string
	AuthMethod          string // "" means incluster
	KubeConfig          string // file
	Pod                 string // file
	AllowRuntimeAuth    bool
	AllowRuntimeCommand bool
	AllowRuntimeParams  bool
	AllowRuntimePod     bool
	DeletePodOnRestart  bool
	StreamMethod        string // "" means logger
	VerifySignature     bool

	// Retry is the schedule of every retried Kubernetes call (opening the
	// log stream, reading the pod, attaching stdin, watching); zero fields
	// take DefaultRetry's.
	Retry Retry
	// ReapInterval is how often pods whose unit is gone are looked for;
	// 0 means DefaultReapInterval, negative disables reaping.
	ReapInterval time.Duration
}

// Retry bounds the retries of one operation: waits grow from Initial to
// Max; the operation fails when it has not succeeded for Timeout.
type Retry struct {
	Initial time.Duration
	Max     time.Duration
	Timeout time.Duration
}

// DefaultRetry is used for the zero fields of Config.Retry.
var DefaultRetry = Retry{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Timeout: 2 * time.Minute}

// DefaultReapInterval is how often orphan pods are looked for.
const DefaultReapInterval = 5 * time.Minute

func (r Retry) withDefaults() Retry {
	if r.Initial <= 0 {
		r.Initial = DefaultRetry.Initial
	}
	if r.Max <= 0 {
		r.Max = DefaultRetry.Max
	}
	if r.Max < r.Initial {
		r.Max = r.Initial
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultRetry.Timeout
	}
	return r
}

func (r Retry) policy() backoff.Policy {
	return backoff.Policy{Initial: r.Initial, Max: r.Max, Factor: 2, Jitter: 0.1}
}

// Tuning is the node-level client tuning: upstream's RECEPTOR_KUBE_*
// environment variables, or the node entity's receptorkube* parameters.
// Empty fields are unset.
type Tuning struct {
	SupportReconnect string // enabled, auto: on; disabled or anything else: off; unset: on
	ClientsetQPS     string // integer, default 100 (burst becomes 10× unless set)
	ClientsetBurst   string // integer, default 1000
	RateLimiter      string // never, always, or the default token bucket
}

// TuningFromEnv fills the unset fields of t from the environment variables
// RECEPTOR_KUBE_SUPPORT_RECONNECT, RECEPTOR_KUBE_CLIENTSET_QPS,
// RECEPTOR_KUBE_CLIENTSET_BURST and RECEPTOR_KUBE_CLIENTSET_RATE_LIMITER:
// the node entity's parameters win.
func TuningFromEnv(t Tuning) Tuning {
	fill := func(field *string, name string) {
		if *field == "" {
			*field = os.Getenv(name)
		}
	}
	fill(&t.SupportReconnect, "RECEPTOR_KUBE_SUPPORT_RECONNECT")
	fill(&t.ClientsetQPS, "RECEPTOR_KUBE_CLIENTSET_QPS")
	fill(&t.ClientsetBurst, "RECEPTOR_KUBE_CLIENTSET_BURST")
	fill(&t.RateLimiter, "RECEPTOR_KUBE_CLIENTSET_RATE_LIMITER")
	return t
}

// reconnect reports whether log streams are resumed after a break. Unset
// means on: every Kubernetes release still supported has the kubelet fix
// upstream's version check looked for (timestamps with sinceTime).
func (t Tuning) reconnect() bool {
	switch t.SupportReconnect {
	case "", "enabled", "auto":
		return true
	}
	return false
}

// Options are the runtime dependencies of a Type.
type Options struct {
	// NodeID labels the pods of this node's units (Reap only deletes
	// those).
	NodeID string
	Tuning Tuning
	// Clients builds the Kubernetes clients of a unit; nil means the real
	// ones from the unit's authentication (tests pass fakes).
	Clients ClientFactory
	Logger  *slog.Logger
}

// Type is a configured work-kubernetes work type.
type Type struct {
	cfg        Config
	opts       Options
	auth       string
	stream     string
	namePrefix string
	log        *slog.Logger
}

// New validates cfg (upstream's start-up checks and texts) and returns the
// work type.
func New(cfg Config, opts Options) (*Type, error) {
	if cfg.WorkType == "" {
		return nil, errors.New("work-kubernetes: worktype is required")
	}
	if cfg.AuthMethod == "" {
		cfg.AuthMethod = AuthInCluster
	}
	if cfg.StreamMethod == "" {
		cfg.StreamMethod = StreamLogger
	}
	auth := strings.ToLower(cfg.AuthMethod)
	if err := checkConfig(cfg, auth); err != nil {
		return nil, fmt.Errorf("work-kubernetes %s: %w", cfg.WorkType, err)
	}
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = DefaultReapInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Type{
		cfg: cfg, opts: opts, auth: auth, stream: strings.ToLower(cfg.StreamMethod),
		namePrefix: strings.ToLower(cfg.WorkType) + "-",
		log:        opts.Logger.With("worktype", cfg.WorkType),
	}
	if t.opts.Clients == nil {
		t.opts.Clients = t.realClients
	}
	return t, nil
}

func checkConfig(cfg Config, auth string) error {
	switch auth {
	case AuthKubeconfig, AuthInCluster, AuthRuntime:
	default:
		return fmt.Errorf("invalid AuthMethod: %s", cfg.AuthMethod)
	}
	if cfg.Namespace == "" && auth != AuthKubeconfig && !cfg.AllowRuntimeAuth {
		return errors.New("must provide namespace when AuthMethod is not kubeconfig")
	}
	if cfg.KubeConfig != "" {
		if auth != AuthKubeconfig {
			return errors.New("can only provide KubeConfig when AuthMethod=kubeconfig")
		}
		if _, err := os.Stat(cfg.KubeConfig); err != nil {
			return fmt.Errorf("error accessing kubeconfig file: %s", err)
		}
	}
	if cfg.Pod != "" && (cfg.Image != "" || cfg.Command != "" || cfg.Params != "") {
		return errors.New("can only provide Pod when Image, Command, and Params are empty")
	}
	if cfg.Pod == "" && cfg.Image == "" && !cfg.AllowRuntimeCommand && !cfg.AllowRuntimePod {
		return errors.New("must specify a container image to run")
	}
	switch strings.ToLower(cfg.StreamMethod) {
	case StreamLogger, StreamTCP:
	default:
		return errors.New("stream mode must be logger or tcp")
	}
	if _, err := command.SplitParams(cfg.Command); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if _, err := command.SplitParams(cfg.Params); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}

// Name is the work type name.
func (t *Type) Name() string { return t.cfg.WorkType }

// VerifySignature reports whether submissions must be signed.
func (t *Type) VerifySignature() bool { return t.cfg.VerifySignature }

// parseInt reads a tuning integer; ok is false for an unset or bad value
// (a bad one is logged and ignored, as upstream does).
func (t *Type) parseInt(name, v string) (int, bool) {
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.log.Warn("invalid Kubernetes tuning value; ignoring it", "name", name, "value", v)
		return 0, false
	}
	return n, true
}
