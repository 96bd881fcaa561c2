//go:build tools

// Package kubetools pins the programs this module builds.
package kubetools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
