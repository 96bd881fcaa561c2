package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/receptor-mesh/receptor/services/work/command"
)

// WorkerContainer is the container that gets the unit's stdin and whose log
// is the unit's stdout.
const WorkerContainer = "worker"

// Labels and annotation put on every pod: the unit it runs and the node
// whose agent owns it (hashed: node IDs are not always valid label values).
const (
	LabelUnit      = "receptor.mesh/unit"
	LabelNode      = "receptor.mesh/node"
	AnnotationNode = "receptor.mesh/node-id"
)

// NodeLabel is the LabelNode value of a node ID.
func NodeLabel(nodeID string) string {
	sum := sha256.Sum256([]byte(nodeID))
	return hex.EncodeToString(sum[:12])
}

var errNoWorker = errors.New("at least one container must be named worker")

// buildPod is the pod of a unit: decoded from the pod spec when there is
// one (its worker container gets stdin; restartPolicy Never; a name in the
// spec becomes the generateName prefix, its namespace overrides ours), else
// one worker container from image, command and params. env is added to the
// first container (streammethod tcp).
func (t *Type) buildPod(ex extraData, unitID string, env map[string]string) (*corev1.Pod, error) {
	prefix := t.namePrefix
	var pod *corev1.Pod
	if ex.KubePod != "" {
		var err error
		if pod, err = decodePod([]byte(ex.KubePod)); err != nil {
			return nil, err
		}
		found := false
		for i := range pod.Spec.Containers {
			if c := &pod.Spec.Containers[i]; c.Name == WorkerContainer {
				c.Stdin, c.StdinOnce = true, true
				found = true
				break
			}
		}
		if !found {
			return nil, errNoWorker
		}
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		if pod.Name != "" {
			prefix = pod.Name + "-"
		}
		pod.TypeMeta = metav1.TypeMeta{}
		pod.Status = corev1.PodStatus{}
		pod.ResourceVersion, pod.UID = "", ""
	} else {
		cmd, err := command.SplitParams(ex.Command)
		if err != nil {
			return nil, err
		}
		args, err := command.SplitParams(ex.Params)
		if err != nil {
			return nil, err
		}
		pod = &corev1.Pod{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: WorkerContainer, Image: ex.Image, Command: cmd, Args: args,
				Stdin: true, StdinOnce: true, TTY: false,
			}},
			RestartPolicy: corev1.RestartPolicyNever,
		}}
	}
	pod.Name, pod.GenerateName = "", prefix
	if pod.Namespace == "" {
		pod.Namespace = ex.KubeNamespace
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[LabelUnit] = unitID
	pod.Labels[LabelNode] = NodeLabel(t.opts.NodeID)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationNode] = t.opts.NodeID
	if len(env) > 0 {
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		c := &pod.Spec.Containers[0]
		for _, k := range keys {
			c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: env[k]})
		}
	}
	return pod, nil
}

// workerStatus is the worker container's status in pod, if reported.
func workerStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == WorkerContainer {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// podOutcome is what a pod's status says about the unit.
type podOutcome int

const (
	podWaiting  podOutcome = iota // not started yet
	podReady                      // running and ready: attach
	podFinished                   // the worker container (or the pod) ended
)

// outcome classifies pod. The worker container's termination counts even
// while sidecars keep the pod running.
func outcome(pod *corev1.Pod) podOutcome {
	if ws := workerStatus(pod); ws != nil && ws.State.Terminated != nil {
		return podFinished
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return podFinished
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return podReady
		}
	}
	if ws := workerStatus(pod); ws != nil && ws.State.Running != nil {
		return podReady
	}
	return podWaiting
}

// exitError is nil when the worker container (else the pod) succeeded, or
// the reason the unit failed.
func exitError(pod *corev1.Pod) error {
	if ws := workerStatus(pod); ws != nil && ws.State.Terminated != nil {
		term := ws.State.Terminated
		if term.ExitCode == 0 {
			return nil
		}
		if term.Message != "" {
			return fmt.Errorf("container failed with exit code %d: %s", term.ExitCode, term.Message)
		}
		if term.Reason != "" && term.Reason != "Error" {
			return fmt.Errorf("container failed with exit code %d: %s", term.ExitCode, term.Reason)
		}
		return fmt.Errorf("container failed with exit code %d", term.ExitCode)
	}
	if pod.Status.Phase == corev1.PodFailed {
		msg := pod.Status.Reason
		if pod.Status.Message != "" {
			msg += ": " + pod.Status.Message
		}
		return fmt.Errorf("pod failed: %s", msg)
	}
	return nil
}

// waitingReason is the worker container's waiting reason, if any (e.g.
// ImagePullBackOff).
func waitingReason(pod *corev1.Pod) string {
	if ws := workerStatus(pod); ws != nil && ws.State.Waiting != nil {
		return ws.State.Waiting.Reason
	}
	return ""
}
