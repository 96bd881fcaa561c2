package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// reapGrace spares pods younger than this: their unit may still be on its
// way to disk in another agent sharing the node ID during a move.
const reapGrace = 30 * time.Second

// ReapInterval is how often the agent calls Reap (negative: never).
func (t *Type) ReapInterval() time.Duration { return t.cfg.ReapInterval }

// Reap deletes the pods of this node's units that live reports gone: a
// unit released while the API server was unreachable, or removed by hand.
// It looks where the type's own credentials reach (the kubeconfig file
// or the service account; the configured namespace, else the
// kubeconfig's); units with runtime credentials
// (authmethod runtime, secret_kube_config) are out of its reach, and their
// release deletes their pods.
func (t *Type) Reap(ctx context.Context, live func(unitID string) bool) error {
	if t.auth == AuthRuntime {
		return nil
	}
	// The configured kubeconfig file is read at each pass, as units read
	// it at submit (it may be replaced meanwhile); without one, the
	// default loading rules or the service account apply.
	kubeconfig, err := readFile(t.cfg.KubeConfig)
	if err != nil {
		return fmt.Errorf("work-kubernetes %s: reading kubeconfig to reap pods: %w", t.cfg.WorkType, err)
	}
	c, err := t.opts.Clients(t.auth, kubeconfig)
	if err != nil {
		return fmt.Errorf("work-kubernetes %s: connecting to reap pods: %w", t.cfg.WorkType, err)
	}
	ns := t.cfg.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	if ns == "" {
		return nil
	}
	pods := c.Kube.Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: LabelNode + "=" + NodeLabel(t.opts.NodeID)})
	if err != nil {
		return fmt.Errorf("work-kubernetes %s: listing pods to reap: %w", t.cfg.WorkType, err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		id := p.Labels[LabelUnit]
		if id == "" || p.Annotations[AnnotationNode] != t.opts.NodeID || p.DeletionTimestamp != nil || live(id) {
			continue
		}
		if !p.CreationTimestamp.IsZero() && time.Since(p.CreationTimestamp.Time) < reapGrace {
			continue
		}
		t.log.Info("deleting the pod of a released unit", "pod", ns+"/"+p.Name, "unit", id)
		if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !notFound(err) {
			t.log.Warn("deleting orphan pod", "pod", ns+"/"+p.Name, "err", err)
		}
	}
	return nil
}
