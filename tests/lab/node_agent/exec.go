// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright: (c) 2026, homelab.longhorn_dr contributors

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"
)

// runningContainer checks that namespace/pod is known, Running, and has the container.
func (p *provider) runningContainer(namespace, podName, container string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entry, ok := p.pods[key(namespace, podName)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not running on node %s", namespace, podName, p.nodeName)
	}
	for _, c := range entry.pod.Spec.Containers {
		if c.Name == container {
			if !entry.running {
				return nil, errdefs.InvalidInputf("container %q in pod %s/%s is waiting to start: ContainerCreating", container, namespace, podName)
			}
			return entry.pod.DeepCopy(), nil
		}
	}
	return nil, errdefs.NotFoundf("container %q not found in pod %s/%s", container, namespace, podName)
}

// RunInContainer runs `<exec-command...> NAMESPACE POD CONTAINER -- CMD...` with the exec's
// streams.  Its exit status goes back as a k8s.io/utils/exec CodeExitError: the remotecommand
// server virtual-kubelet embeds turns an ExitError into the NonZeroExitCode status the API
// server relays, so kubectl reports "command terminated with exit code N" and exits N.
//
// A TTY is accepted but not emulated: the command gets pipes, and resize events are drained.
func (p *provider) RunInContainer(ctx context.Context, namespace, podName, container string, cmd []string, attach api.AttachIO) error {
	if _, err := p.runningContainer(namespace, podName, container); err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errdefs.InvalidInput("no command given")
	}
	argv := append(append([]string(nil), p.execArgv...), namespace, podName, container, "--")
	argv = append(argv, cmd...)

	child := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Own process group, ended as a whole when the exec stream goes away.
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	child.Cancel = func() error { return syscall.Kill(-child.Process.Pid, syscall.SIGKILL) }
	// A background child that keeps stdout open must not hold the exec open forever.
	child.WaitDelay = 2 * time.Second

	if out := attach.Stdout(); out != nil {
		child.Stdout = out
	}
	if errOut := attach.Stderr(); errOut != nil {
		child.Stderr = errOut
	} else if attach.TTY() && attach.Stdout() != nil {
		child.Stderr = attach.Stdout() // a TTY has one output stream
	}
	var stdin io.WriteCloser
	if in := attach.Stdin(); in != nil {
		pipe, err := child.StdinPipe()
		if err != nil {
			return err
		}
		stdin = pipe
		// Not child.Stdin = in: Wait would then wait for the client to close stdin even after
		// the command exited.  Wait closes this pipe when the command exits.
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	if resize := attach.Resize(); resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-resize:
					if !ok {
						return
					}
				}
			}
		}()
	}

	klog.V(2).Infof("exec in %s/%s[%s]: %q", namespace, podName, container, argv)
	err := child.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return nil
	case errors.As(err, &exitErr):
		code := exitErr.ExitCode()
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			code = 128 + int(status.Signal())
		}
		klog.V(2).Infof("exec in %s/%s[%s] exited %d", namespace, podName, container, code)
		return utilexec.CodeExitError{Err: fmt.Errorf("command '%s' exited with %d", strings.Join(cmd, " "), code), Code: code}
	default:
		klog.Errorf("exec in %s/%s[%s]: %v", namespace, podName, container, err)
		return fmt.Errorf("running the exec command %q: %w", argv[0], err)
	}
}

// AttachToContainer: the lab's containers have no main process to attach to.
func (p *provider) AttachToContainer(_ context.Context, namespace, podName, container string, _ api.AttachIO) error {
	if _, err := p.runningContainer(namespace, podName, container); err != nil {
		return err
	}
	return errdefs.InvalidInput("attach is not supported by the lab node agent")
}
