// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright: (c) 2026, homelab.longhorn_dr contributors

package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// podEntry is the provider's copy of one pod bound to this node.
type podEntry struct {
	pod      *corev1.Pod // as last reported to the pod controller (spec from Kubernetes, status ours)
	running  bool
	waitMsg  string // why it is still pending, as last logged
	lastSeen time.Time
}

// provider implements virtual-kubelet's PodLifecycleHandler and PodNotifier.  Pods do not
// run anywhere: a pod is "Running" once the volumes kubelet would wait for are attached, and
// its containers run until the pod is deleted.  `kubectl exec` runs the --exec-command.
type provider struct {
	client   kubernetes.Interface
	nodeName string
	execArgv []string
	poll     time.Duration
	recorder record.EventRecorder

	mu      sync.Mutex
	pods    map[string]*podEntry // namespace/name
	updates chan *corev1.Pod
	notify  func(*corev1.Pod)
	ctx     context.Context // of run: outlives the pod controller's per-call contexts
	ready   chan struct{}   // closed once notify is set
}

func newProvider(client kubernetes.Interface, nodeName string, execArgv []string, poll time.Duration) *provider {
	return &provider{
		client:   client,
		nodeName: nodeName,
		execArgv: append([]string(nil), execArgv...),
		poll:     poll,
		pods:     map[string]*podEntry{},
		updates:  make(chan *corev1.Pod, 4096),
		ready:    make(chan struct{}),
		ctx:      context.Background(),
	}
}

func key(namespace, name string) string { return namespace + "/" + name }

// NotifyPods is called once by the pod controller; status changes are delivered from a single
// goroutine (run) so that a pod's Pending and Running reports keep their order.
func (p *provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notify == nil {
		p.notify = cb
		close(p.ready)
	}
}

func (p *provider) publish(pod *corev1.Pod) {
	select {
	case p.updates <- pod.DeepCopy():
	default:
		klog.Warningf("pod status queue full; dropping an update of %s/%s (the volume poll re-sends it)", pod.Namespace, pod.Name)
	}
}

// run delivers status updates and re-checks pending pods' volumes every p.poll.
func (p *provider) run(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	select {
	case <-p.ready:
	case <-ctx.Done():
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case pod := <-p.updates:
				p.notify(pod)
			}
		}
	}()
	ticker := time.NewTicker(p.poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.checkPending(ctx)
		}
	}
}

func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	entry := &podEntry{pod: pod.DeepCopy()}
	now := metav1.Now()
	entry.pod.Status = pendingStatus(entry.pod, now, "")
	p.mu.Lock()
	p.pods[key(pod.Namespace, pod.Name)] = entry
	p.mu.Unlock()
	klog.Infof("pod %s/%s bound to %s: waiting for its volumes", pod.Namespace, pod.Name, p.nodeName)
	p.publish(entry.pod)
	p.checkOne(ctx, key(pod.Namespace, pod.Name))
	return nil
}

// UpdatePod keeps the new spec/metadata and our status (a kubelet owns the status).
func (p *provider) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	entry, ok := p.pods[key(pod.Namespace, pod.Name)]
	if !ok {
		return errdefs.NotFoundf("pod %s/%s is not known to the node agent", pod.Namespace, pod.Name)
	}
	status := entry.pod.Status
	entry.pod = pod.DeepCopy()
	entry.pod.Status = status
	p.publish(entry.pod)
	return nil
}

// DeletePod terminates the containers at once (no grace period to honour: nothing runs) and
// reports the terminal status; the pod controller then deletes the pod object with grace 0
// (its syncPodInProvider: DeletionTimestamp set and not running).
func (p *provider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.mu.Lock()
	entry, ok := p.pods[k]
	if ok {
		delete(p.pods, k)
	}
	base := p.ctx
	p.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("pod %s/%s is not known to the node agent", pod.Namespace, pod.Name)
	}
	final := pod.DeepCopy()
	final.Status = terminatedStatus(entry.pod, metav1.Now())
	klog.Infof("pod %s/%s deleted: containers terminated", pod.Namespace, pod.Name)
	p.publish(final)
	if pod.DeletionTimestamp != nil {
		go p.finalDelete(base, pod.Namespace, pod.Name, pod.UID)
	}
	return nil
}

// finalDelete removes the pod object once its terminal status is recorded, with grace 0 and
// the pod's UID as precondition, as kubelet's status manager does (pkg/kubelet/status,
// canBeDeleted / the delete in syncPod).  Without it the pod controller deletes only when the
// pod's whole grace period has passed, and `kubectl delete pod` waits 30s for nothing.
func (p *provider) finalDelete(parent context.Context, namespace, name string, uid types.UID) {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	pods := p.client.CoreV1().Pods(namespace)
	for ctx.Err() == nil {
		current, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && current.UID != uid) {
			return
		}
		if err == nil && (current.Status.Phase == corev1.PodSucceeded || current.Status.Phase == corev1.PodFailed) {
			options := metav1.NewDeleteOptions(0)
			options.Preconditions = metav1.NewUIDPreconditions(string(uid))
			err = pods.Delete(ctx, name, *options)
			if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return
			}
		}
		if err != nil {
			klog.Warningf("final delete of pod %s/%s: %v (retrying)", namespace, name, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(p.poll):
		}
	}
}

func (p *provider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entry, ok := p.pods[key(namespace, name)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not known to the node agent", namespace, name)
	}
	return entry.pod.DeepCopy(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, entry := range p.pods {
		out = append(out, entry.pod.DeepCopy())
	}
	return out, nil
}

// GetContainerLogs: containers print nothing; an empty stream, not an error, so `kubectl logs`
// succeeds.
func (p *provider) GetContainerLogs(_ context.Context, namespace, podName, containerName string, _ api.ContainerLogOpts) (io.ReadCloser, error) {
	if _, err := p.runningContainer(namespace, podName, containerName); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// ---- the volume gate ---------------------------------------------------------------------

func (p *provider) checkPending(ctx context.Context) {
	p.mu.Lock()
	keys := make([]string, 0, len(p.pods))
	for k, entry := range p.pods {
		if !entry.running {
			keys = append(keys, k)
		}
	}
	p.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		p.checkOne(ctx, k)
	}
}

func (p *provider) checkOne(ctx context.Context, k string) {
	p.mu.Lock()
	entry, ok := p.pods[k]
	if !ok || entry.running {
		p.mu.Unlock()
		return
	}
	pod := entry.pod.DeepCopy()
	p.mu.Unlock()

	waiting := p.unattachedVolume(ctx, pod)

	p.mu.Lock()
	defer p.mu.Unlock()
	entry, ok = p.pods[k]
	if !ok || entry.running {
		return
	}
	now := metav1.Now()
	if waiting == "" {
		entry.running = true
		entry.pod.Status = runningStatus(entry.pod, now)
		klog.Infof("pod %s: volumes attached, containers running", k)
		p.publish(entry.pod)
		if p.recorder != nil {
			for _, c := range entry.pod.Spec.Containers {
				p.recorder.Eventf(entry.pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
			}
		}
		return
	}
	if waiting != entry.waitMsg {
		entry.waitMsg = waiting
		klog.Infof("pod %s pending: %s", k, waiting)
		entry.pod.Status = pendingStatus(entry.pod, now, waiting)
		p.publish(entry.pod)
	}
}

// unattachedVolume returns "" when every volume kubelet would wait for is attached, else why
// the pod still waits.
//
// Kubelet's volume manager (pkg/kubelet/volumemanager: WaitForAttachAndMount, the reconciler's
// VerifyControllerAttachedVolume, then the CSI attacher's WaitForAttach in
// pkg/volume/csi/csi_attacher.go) holds a pod's containers until every attachable volume is
// attached to the node by the attach-detach controller, i.e. its VolumeAttachment reports
// status.attached.  Non-attachable volumes (emptyDir, configMap, secret, hostPath, projected,
// downwardAPI, ...) need no wait here.
//
// Only GETs by name: the Node authorizer allows a node to get the PVCs and PVs of pods bound
// to it and the VolumeAttachments naming it, and nothing else (no list, no watch).  A refusal
// is reported (the authorizer's graph may lag the pod's binding) and retried at the next poll.
func (p *provider) unattachedVolume(ctx context.Context, pod *corev1.Pod) string {
	for _, volume := range pod.Spec.Volumes {
		claimName := ""
		switch {
		case volume.PersistentVolumeClaim != nil:
			claimName = volume.PersistentVolumeClaim.ClaimName
		case volume.Ephemeral != nil:
			// Generic ephemeral volume: the ephemeral-volume controller names the PVC
			// <pod>-<volume>.
			claimName = pod.Name + "-" + volume.Name
		default:
			continue
		}
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg := p.claimUnattached(reqCtx, pod.Namespace, volume.Name, claimName)
		cancel()
		if msg != "" {
			return msg
		}
	}
	return ""
}

func (p *provider) claimUnattached(ctx context.Context, namespace, volumeName, claimName string) string {
	pvc, err := p.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claimName, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("volume %q: cannot get persistentvolumeclaim %s/%s: %v", volumeName, namespace, claimName, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return fmt.Sprintf("volume %q: persistentvolumeclaim %s/%s is not bound (phase %q)", volumeName, namespace, claimName, pvc.Status.Phase)
	}
	pv, err := p.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("volume %q: cannot get persistentvolume %s: %v", volumeName, pvc.Spec.VolumeName, err)
	}
	if pv.Spec.CSI == nil {
		return "" // not a CSI volume: nothing the lab attaches
	}
	attachment := attachmentName(pv.Spec.CSI.VolumeHandle, pv.Spec.CSI.Driver, p.nodeName)
	va, err := p.client.StorageV1().VolumeAttachments().Get(ctx, attachment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		// Forbidden is also what a node gets for a VolumeAttachment that does not exist yet
		// (the authorizer has no graph edge to it): expected, so only at -v=4.
		klog.V(4).Infof("volume %q: get volumeattachment %s: %v", volumeName, attachment, err)
		return fmt.Sprintf("volume %q: waiting for volumeattachment %s (pv %s, driver %s) to be created",
			volumeName, attachment, pv.Name, pv.Spec.CSI.Driver)
	}
	if err != nil {
		return fmt.Sprintf("volume %q: cannot get volumeattachment %s: %v", volumeName, attachment, err)
	}
	if va.Spec.NodeName != p.nodeName || va.Spec.Source.PersistentVolumeName == nil || *va.Spec.Source.PersistentVolumeName != pv.Name {
		return fmt.Sprintf("volume %q: volumeattachment %s is for node %q / pv %v, not %s / %s",
			volumeName, attachment, va.Spec.NodeName, va.Spec.Source.PersistentVolumeName, p.nodeName, pv.Name)
	}
	if !va.Status.Attached {
		detail := ""
		if va.Status.AttachError != nil {
			detail = ": " + va.Status.AttachError.Message
		}
		return fmt.Sprintf("volume %q: volumeattachment %s is not attached yet%s", volumeName, attachment, detail)
	}
	return ""
}

// attachmentName is the name the attach-detach controller's CSI attacher gives the
// VolumeAttachment of (volume handle, driver, node), and the one kubelet GETs
// (pkg/volume/csi/csi_attacher.go, getAttachmentName): "csi-" + hex(sha256(handle+driver+node)).
func attachmentName(volumeHandle, driver, nodeName string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(volumeHandle+driver+nodeName)))
}

// ---- statuses ----------------------------------------------------------------------------

func podCondition(t corev1.PodConditionType, ok bool, now metav1.Time, reason string) corev1.PodCondition {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
		reason = ""
	}
	return corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now}
}

func containerID(pod *corev1.Pod, name string) string {
	return fmt.Sprintf("lab://%s/%s", pod.UID, name)
}

func baseStatus(pod *corev1.Pod, now metav1.Time) corev1.PodStatus {
	start := now
	if pod.Status.StartTime != nil {
		start = *pod.Status.StartTime
	}
	return corev1.PodStatus{
		HostIP:    loopback,
		HostIPs:   []corev1.HostIP{{IP: loopback}},
		StartTime: &start,
		QOSClass:  pod.Status.QOSClass,
	}
}

func completedInitContainers(pod *corev1.Pod, now metav1.Time) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, c := range pod.Spec.InitContainers {
		out = append(out, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: containerID(pod, c.Name),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: containerID(pod, c.Name)}},
		})
	}
	return out
}

func pendingStatus(pod *corev1.Pod, now metav1.Time, message string) corev1.PodStatus {
	s := baseStatus(pod, now)
	s.Phase = corev1.PodPending
	s.Conditions = []corev1.PodCondition{
		podCondition(corev1.PodReadyToStartContainers, false, now, ""),
		podCondition(corev1.PodInitialized, len(pod.Spec.InitContainers) == 0, now, "ContainersNotInitialized"),
		podCondition(corev1.ContainersReady, false, now, "ContainersNotReady"),
		podCondition(corev1.PodReady, false, now, "ContainersNotReady"),
		podCondition(corev1.PodScheduled, true, now, ""),
	}
	for _, c := range pod.Spec.InitContainers {
		s.InitContainerStatuses = append(s.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}},
		})
	}
	for _, c := range pod.Spec.Containers {
		started := false
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Started: &started,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating", Message: message}},
		})
	}
	return s
}

func runningStatus(pod *corev1.Pod, now metav1.Time) corev1.PodStatus {
	s := baseStatus(pod, now)
	s.Phase = corev1.PodRunning
	s.PodIP = loopback
	s.PodIPs = []corev1.PodIP{{IP: loopback}}
	s.Conditions = []corev1.PodCondition{
		podCondition(corev1.PodReadyToStartContainers, true, now, ""),
		podCondition(corev1.PodInitialized, true, now, ""),
		podCondition(corev1.ContainersReady, true, now, ""),
		podCondition(corev1.PodReady, true, now, ""),
		podCondition(corev1.PodScheduled, true, now, ""),
	}
	s.InitContainerStatuses = completedInitContainers(pod, now)
	for _, c := range pod.Spec.Containers {
		started := true
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: containerID(pod, c.Name),
			Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return s
}

func terminatedStatus(pod *corev1.Pod, now metav1.Time) corev1.PodStatus {
	s := pod.Status.DeepCopy()
	s.Phase = corev1.PodSucceeded
	for i := range s.Conditions {
		switch s.Conditions[i].Type {
		case corev1.PodReady, corev1.ContainersReady, corev1.PodReadyToStartContainers:
			if s.Conditions[i].Status != corev1.ConditionFalse {
				s.Conditions[i].Status = corev1.ConditionFalse
				s.Conditions[i].Reason = "PodCompleted"
				s.Conditions[i].LastTransitionTime = now
			}
		}
	}
	for i := range s.ContainerStatuses {
		c := &s.ContainerStatuses[i]
		started := now
		if c.State.Running != nil {
			started = c.State.Running.StartedAt
		}
		notStarted := false
		c.Ready, c.Started = false, &notStarted
		c.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: now, ContainerID: containerID(pod, c.Name)}}
	}
	return *s
}
