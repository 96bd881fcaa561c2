package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/flowcontrol"
)

// Clients are the Kubernetes clients of one unit.
type Clients struct {
	Kube CoreAPI
	// Namespace is the namespace of the kubeconfig's current context, used
	// for units that name none.
	Namespace string
	// Attach sends stdin to the worker container of a pod (the attach
	// subresource) until stdin ends.
	Attach func(ctx context.Context, namespace, pod string, stdin io.Reader) error
	// Logs opens the worker container's log.
	Logs func(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
}

// ClientFactory builds the clients of a unit from its authentication
// method and kubeconfig content ("" for the default loading rules or
// in-cluster).
type ClientFactory func(method, kubeconfig string) (*Clients, error)

// realClients connects as upstream does: kubeconfig content (runtime, or
// the configured file read at submit), the default kubeconfig loading rules,
// or the in-cluster service account; then applies the node's tuning.
func (t *Type) realClients(method, kubeconfig string) (*Clients, error) {
	var (
		cfg *rest.Config
		ns  string
		err error
	)
	switch method {
	case AuthKubeconfig, AuthRuntime:
		var cc clientcmd.ClientConfig
		if kubeconfig == "" {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			cc = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
		} else if cc, err = clientcmd.NewClientConfigFromBytes([]byte(kubeconfig)); err != nil {
			return nil, err
		}
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, err
		}
		if cfg, err = cc.ClientConfig(); err != nil {
			return nil, err
		}
	case AuthInCluster:
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown auth method %s", method)
	}
	t.tune(cfg)
	core, err := newCoreClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Clients{
		Kube: core, Namespace: ns,
		Attach: func(ctx context.Context, namespace, pod string, stdin io.Reader) error {
			return attach(ctx, cfg, core, namespace, pod, stdin)
		},
		Logs: core.logs,
	}, nil
}

// tune applies upstream's client defaults (QPS 100, burst 1000) and the
// node's tuning.
func (t *Type) tune(cfg *rest.Config) {
	cfg.QPS, cfg.Burst = 100, 1000
	tn := t.opts.Tuning
	if qps, ok := t.parseInt("RECEPTOR_KUBE_CLIENTSET_QPS", tn.ClientsetQPS); ok {
		cfg.QPS, cfg.Burst = float32(qps), qps*10
	}
	if burst, ok := t.parseInt("RECEPTOR_KUBE_CLIENTSET_BURST", tn.ClientsetBurst); ok {
		cfg.Burst = burst
	}
	switch tn.RateLimiter {
	case "never":
		cfg.RateLimiter = flowcontrol.NewFakeNeverRateLimiter()
	case "always":
		cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	}
}

// attach streams stdin to the worker container over the attach
// subresource: SPDY as upstream, falling back to WebSocket where the
// upgrade is refused.
func attach(ctx context.Context, cfg *rest.Config, core *coreClient, namespace, pod string, stdin io.Reader) error {
	req := core.attachRequest(namespace, pod)
	spdy, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		return err
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, req.URL().String())
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(spdy, ws, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin})
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return err
}
