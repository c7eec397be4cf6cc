// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright: (c) 2026, homelab.longhorn_dr contributors

package main

import (
	"context"
	"runtime/debug"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const loopback = "127.0.0.1"

// kubeletVersion reports the Kubernetes release the agent is built against: k8s.io/api v0.X.Y
// is Kubernetes v1.X.Y.  Read from the build info so that it follows go.mod's replace.
func kubeletVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path != "k8s.io/api" {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			if strings.HasPrefix(dep.Version, "v0.") {
				return "v1." + strings.TrimPrefix(dep.Version, "v0.")
			}
		}
	}
	return "v0.0.0-unknown"
}

// nodeSpec is the Node the agent registers: schedulable like a k3s agent (no virtual-kubelet
// taint), with the addresses and port the API server uses to reach the kubelet API for exec
// (--kubelet-preferred-address-types=InternalIP).
func nodeSpec(name string, port int) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, message string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: message, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			// Only labels NodeRestriction lets a kubelet set on itself.
			Labels: map[string]string{
				"kubernetes.io/hostname":  name,
				"kubernetes.io/os":        "linux",
				"kubernetes.io/arch":      "amd64",
				"beta.kubernetes.io/os":   "linux",
				"beta.kubernetes.io/arch": "amd64",
			},
			// As kubelet does by default (--enable-controller-attach-detach): without it the
			// attach-detach controller does not attach volumes for pods on this node, and no
			// VolumeAttachment is ever created.
			Annotations: map[string]string{
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			},
		},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodeRunning,
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Conditions: []corev1.NodeCondition{
				condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "lab node agent is posting ready status"),
				condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: loopback},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               "lab-" + name,
				SystemUUID:              "lab-" + name,
				BootID:                  "lab-" + name,
				KernelVersion:           "lab",
				OSImage:                 "homelab.longhorn_dr lab node agent",
				ContainerRuntimeVersion: "lab://0",
				KubeletVersion:          kubeletVersion(),
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
		},
	}
}

// staticNodeProvider: the node is always healthy; the node controller renews the Lease and
// re-posts the status (with fresh heartbeats) on its own schedule.
type staticNodeProvider struct{}

func (staticNodeProvider) Ping(context.Context) error                           { return nil }
func (staticNodeProvider) NotifyNodeStatus(context.Context, func(*corev1.Node)) {}
