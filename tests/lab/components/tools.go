//go:build tools

// Package components pins the upstream programs the lab builds; build.py
// runs `go build` on their main packages inside this module.
package components

import (
	_ "github.com/k3s-io/kine/pkg/app"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
