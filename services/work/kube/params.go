package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/receptor-mesh/receptor/services/work/command"
)

// extraData is the unit's ExtraData in its status file. The first seven
// members are upstream's (same names and order); KubeConfig and KubePod
// hold file or runtime contents and are blanked in every reply (Redact).
// The rest is ours: what a restarted agent needs to re-attach.
type extraData struct {
	upstreamExtra

	PodUID string `json:",omitempty"`
	// PodPendingTimeout is the runtime param pod_pending_timeout.
	PodPendingTimeout time.Duration `json:",omitempty"`
	// Cursor is where the log stream stands: the stdout file holds exactly
	// the log up to it (written with StdoutSize in one status update).
	Cursor *cursor `json:",omitempty"`
}

// upstreamExtra is upstream's part of extraData. Replies show it with the
// secrets blanked, as upstream's Status() does (Redact).
type upstreamExtra struct {
	Image         string
	Command       string
	Params        string
	KubeNamespace string
	KubeConfig    string
	KubePod       string
	PodName       string
}

func parseExtra(raw json.RawMessage) (extraData, error) {
	var ex extraData
	if len(raw) == 0 {
		return ex, fmt.Errorf("kubernetes unit without ExtraData")
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		return ex, fmt.Errorf("kubernetes unit ExtraData: %w", err)
	}
	return ex, nil
}

// Redact returns a unit's ExtraData as replies show it: without the
// kubeconfig and pod spec contents (runtime secret_* values included) and
// without our internal members. Anything unreadable becomes null.
func (t *Type) Redact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	ex, err := parseExtra(raw)
	if err != nil {
		return nil
	}
	pub := ex.upstreamExtra
	pub.KubeConfig, pub.KubePod = "", ""
	b, err := json.Marshal(pub)
	if err != nil {
		return nil
	}
	return b
}

// readFile is "" for an empty name, else the file's content.
func readFile(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Prepare applies the runtime params of a submit (upstream's permission
// rules and error texts; empty values are ignored) and returns the unit's
// initial ExtraData. The configured pod and kubeconfig files are read now,
// as upstream does.
func (t *Type) Prepare(params map[string]string) (json.RawMessage, error) {
	ex := extraData{upstreamExtra: upstreamExtra{Image: t.cfg.Image, Command: t.cfg.Command, KubeNamespace: t.cfg.Namespace}}
	var err error
	if ex.KubePod, err = readFile(t.cfg.Pod); err != nil {
		return nil, fmt.Errorf("could not read pod: %s", err)
	}
	if ex.KubeConfig, err = readFile(t.cfg.KubeConfig); err != nil {
		return nil, fmt.Errorf("could not read kubeconfig: %s", err)
	}
	var userCommand, userImage, userParams, userPod, pendingTimeout string
	values := []struct {
		name    string
		allowed bool
		target  *string
	}{
		{"kube_command", t.cfg.AllowRuntimeCommand, &userCommand},
		{"kube_image", t.cfg.AllowRuntimeCommand, &userImage},
		{"kube_params", t.cfg.AllowRuntimeParams, &userParams},
		{"kube_namespace", t.cfg.AllowRuntimeAuth, &ex.KubeNamespace},
		{"secret_kube_config", t.cfg.AllowRuntimeAuth, &ex.KubeConfig},
		{"secret_kube_pod", t.cfg.AllowRuntimePod, &userPod},
		{"pod_pending_timeout", t.cfg.AllowRuntimeParams, &pendingTimeout},
	}
	for _, v := range values {
		if s := params[v.name]; s != "" {
			if !v.allowed {
				return nil, fmt.Errorf("%s provided but not allowed", v.name)
			}
			*v.target = s
		}
	}
	if t.auth == AuthRuntime && ex.KubeConfig == "" {
		return nil, fmt.Errorf("param secret_kube_config must be provided if AuthMethod=runtime")
	}
	if userPod != "" && (userParams != "" || userCommand != "" || userImage != "") {
		return nil, fmt.Errorf("params kube_command, kube_image, kube_params not compatible with secret_kube_pod")
	}
	if pendingTimeout != "" {
		d, err := time.ParseDuration(pendingTimeout)
		if err != nil {
			return nil, err
		}
		ex.PodPendingTimeout = d
	}
	if userCommand != "" {
		ex.Command = userCommand
	}
	if userImage != "" {
		ex.Image = userImage
	}
	if userPod != "" {
		ex.KubePod, ex.Image, ex.Command = userPod, "", ""
	} else {
		if ex.Params, err = command.CombineParams(t.cfg.Params, userParams, true); err != nil {
			return nil, err
		}
	}
	// Catch what would only fail once the pod is built: bad quoting, or a
	// pod spec that does not decode or has no worker container.
	if _, err := t.buildPod(ex, "unit", nil); err != nil {
		return nil, err
	}
	return json.Marshal(ex)
}
