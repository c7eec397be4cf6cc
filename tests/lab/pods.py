# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a command "inside" a lab pod: the host's binaries, the pod's volume mounts.

Lab pods are not containers.  A command runs as a process of this machine in a
private mount namespace whose root is a tmpfs holding bind mounts of every
top-level host directory; the pod's ``volumeMounts`` are bind mounts of the
Longhorn volume data directories (issue 2 §4d).  Mount points that do not exist
on the host are created inside tmpfs layers, never on the host, so a
``mountPath`` such as ``/data`` or ``/var/lib/postgresql/data`` works without
touching the host's file system.

This file is also the sandbox entry point: ``python -I -S pods.py <spec>`` sets up
the namespace, chroots and execs the command.  That path uses the standard
library only, which is why this module imports nothing from the lab package.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import re
import signal
import subprocess
import sys

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LONGHORN_DRIVER = "driver.longhorn.io"

# mount(2) / unshare(2) constants from <sys/mount.h> and <sched.h>.
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_CLONE_NEWNS = 0x00020000

_ENV_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodExecError(Exception):
    """The command could not be started in the pod; ``reason``/``code`` shape the API Status."""

    def __init__(self, message, reason="BadRequest", code=400):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code


# ---- what the pod sees --------------------------------------------------------------

def pod_dir(ctx, pod):
    """Node-local files of one pod (emptyDir, projected ConfigMaps and Secrets), keyed by uid like the kubelet's."""
    return ctx.config.path("pods", pod["metadata"]["uid"])


def find_container(pod, container):
    """The container spec named ``container`` (or the only one), as the API server picks it for exec."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    name = pod["metadata"]["name"]
    if not container:
        if len(containers) == 1:
            return containers[0]
        names = " ".join(c.get("name", "") for c in containers)
        raise PodExecError("a container name must be specified for pod %s, choose one of: [%s]" % (name, names))
    for candidate in containers + list(spec.get("initContainers") or []):
        if candidate.get("name") == container:
            return candidate
    raise PodExecError("container %s is not valid for pod %s" % (container, name))


def check_runnable(pod, container_spec):
    """Refuse like the API server/kubelet when the pod has no running container to exec into."""
    name = pod["metadata"]["name"]
    if not (pod.get("spec") or {}).get("nodeName"):
        raise PodExecError("pod %s does not have a host assigned" % name)
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise PodExecError('unable to upgrade connection: container not found ("%s"): pod %s is %s, not Running'
                           % (container_spec.get("name"), name, phase or "Pending"))
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container_spec.get("name") and "running" not in (status.get("state") or {}):
            raise PodExecError('unable to upgrade connection: container not found ("%s")' % container_spec.get("name"))


def _claim_source(ctx, namespace, claim_name):
    """Host directory behind a PVC: PVC -> bound PV -> Longhorn volume data dir."""
    store = ctx.store
    pvc = store.try_get("persistentvolumeclaims", namespace, claim_name)
    if pvc is None:
        raise PodExecError('persistentvolumeclaim "%s" not found' % claim_name, reason="InternalError", code=500)
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    pv = store.try_get("persistentvolumes", "", pv_name) if pv_name else None
    if pv is None or (pvc.get("status") or {}).get("phase") != "Bound":
        raise PodExecError('persistentvolumeclaim "%s" is not bound' % claim_name, reason="InternalError", code=500)
    pv_spec = pv.get("spec") or {}
    csi = pv_spec.get("csi") or {}
    if csi.get("driver") == LONGHORN_DRIVER and csi.get("volumeHandle"):
        return ctx.volume_data_dir(csi["volumeHandle"])
    host_path = (pv_spec.get("hostPath") or {}).get("path") or (pv_spec.get("local") or {}).get("path")
    if host_path and os.path.isdir(host_path):
        return host_path
    raise PodExecError("persistentvolume %s has a volume source the lab cannot mount" % pv_name, reason="InternalError", code=500)


def _utf8(value):
    return value.encode("utf-8")


def _write_items(target, data, items, decode):
    os.makedirs(target, exist_ok=True)
    for entry in os.listdir(target):
        path = os.path.join(target, entry)
        if os.path.isfile(path):
            os.unlink(path)
    selected = [(item["key"], item.get("path") or item["key"]) for item in items] if items else [(k, k) for k in sorted(data)]
    for key, rel in selected:
        if key not in data:
            continue
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(decode(data[key]))


def _project(ctx, namespace, target, source):
    """Write ConfigMap/Secret keys as files, as the kubelet projects them."""
    if "configMap" in source:
        ref = source["configMap"]
        obj = ctx.store.try_get("configmaps", namespace, ref.get("name"))
        data = dict((obj or {}).get("data") or {})
        decode = _utf8
    else:
        ref = source["secret"]
        obj = ctx.store.try_get("secrets", namespace, ref.get("secretName") or ref.get("name"))
        data = dict((obj or {}).get("data") or {})
        decode = base64.b64decode
    if obj is None and not ref.get("optional"):
        kind = "configmap" if "configMap" in source else "secret"
        raise PodExecError("%s %s not found" % (kind, ref.get("name") or ref.get("secretName")), reason="InternalError", code=500)
    _write_items(target, data, ref.get("items"), decode)


def volume_sources(ctx, pod):
    """``{volume name: host directory}`` for every volume of the pod the lab can provide."""
    namespace = pod["metadata"]["namespace"]
    sources = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name")
        local = os.path.join(pod_dir(ctx, pod), "volumes", name)
        if "persistentVolumeClaim" in volume:
            sources[name] = _claim_source(ctx, namespace, volume["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in volume:
            os.makedirs(local, exist_ok=True)
            sources[name] = local
        elif "configMap" in volume or "secret" in volume:
            _project(ctx, namespace, local, volume)
            sources[name] = local
        elif "projected" in volume:
            os.makedirs(local, exist_ok=True)
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source or "secret" in source:
                    _project(ctx, namespace, local, source)
            sources[name] = local
        elif "hostPath" in volume and os.path.isdir(volume["hostPath"].get("path", "")):
            sources[name] = volume["hostPath"]["path"]
    return sources


def container_mounts(ctx, pod, container_spec):
    """Bind mounts for the container: ``[{"source", "target", "readOnly"}]``, parents before children."""
    sources = volume_sources(ctx, pod)
    mounts = []
    for mount in container_spec.get("volumeMounts") or []:
        name = mount.get("name")
        if name not in sources:
            raise PodExecError("volume %s of pod %s cannot be mounted in the lab" % (name, pod["metadata"]["name"]),
                               reason="InternalError", code=500)
        source = sources[name]
        if mount.get("subPath"):
            # The kubelet creates a missing subPath inside the volume.
            source = os.path.join(source, mount["subPath"].lstrip("/"))
            os.makedirs(source, exist_ok=True)
        target = os.path.normpath("/" + mount["mountPath"].lstrip("/"))
        mounts.append({"source": source, "target": target, "readOnly": bool(mount.get("readOnly"))})
    mounts.sort(key=lambda m: m["target"].count("/") if m["target"] != "/" else 0)
    return mounts


def _field_value(pod, path):
    current = pod
    for part in path.split("."):
        current = (current or {}).get(part) if isinstance(current, dict) else None
    return "" if current is None else str(current)


def container_env(ctx, pod, container_spec):
    """The container's environment: image-like defaults, ``envFrom`` then ``env`` with ``$(VAR)`` expansion."""
    namespace = pod["metadata"]["namespace"]
    env = {
        # The lab interpreter first, so "python3" in a pod is one with sqlite3 and the lab's packages.
        "PATH": os.path.dirname(sys.executable) + ":" + CONTAINER_PATH,
        "HOSTNAME": pod["metadata"]["name"],
        "HOME": "/root",
        "KUBERNETES_SERVICE_HOST": "10.43.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    for source in container_spec.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            obj = ctx.store.try_get("configmaps", namespace, source["configMapRef"].get("name"))
            values = dict((obj or {}).get("data") or {})
        else:
            obj = ctx.store.try_get("secrets", namespace, (source.get("secretRef") or {}).get("name"))
            values = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in ((obj or {}).get("data") or {}).items()}
        for key, value in values.items():
            env[prefix + key] = value
    for var in container_spec.get("env") or []:
        name = var.get("name")
        if "value" in var or "valueFrom" not in var:
            env[name] = _ENV_REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                                           str(var.get("value", "")))
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[name] = _field_value(pod, ref["fieldRef"].get("fieldPath", ""))
        elif "configMapKeyRef" in ref:
            obj = ctx.store.try_get("configmaps", namespace, ref["configMapKeyRef"].get("name"))
            value = ((obj or {}).get("data") or {}).get(ref["configMapKeyRef"].get("key"))
            if value is not None:
                env[name] = value
        elif "secretKeyRef" in ref:
            obj = ctx.store.try_get("secrets", namespace, ref["secretKeyRef"].get("name"))
            value = ((obj or {}).get("data") or {}).get(ref["secretKeyRef"].get("key"))
            if value is not None:
                env[name] = base64.b64decode(value).decode("utf-8", "replace")
    return env


def sandbox_spec(ctx, pod, container, command):
    """Everything the sandbox process needs, after the API-level checks (raises PodExecError)."""
    if not command or not all(isinstance(part, str) for part in command):
        raise PodExecError("you must specify at least one command for the container")
    container_spec = find_container(pod, container)
    check_runnable(pod, container_spec)
    root = ctx.config.path("pods", ".rootfs")
    os.makedirs(root, exist_ok=True)
    return {
        "root": root,
        "mounts": container_mounts(ctx, pod, container_spec),
        "env": container_env(ctx, pod, container_spec),
        "workdir": container_spec.get("workingDir") or "/",
        "argv": list(command),
    }


# ---- running it ---------------------------------------------------------------------

class Started:
    """A command started in a pod sandbox. ``failure()`` tells whether exec itself failed."""

    def __init__(self, process, error_fd):
        self.process = process
        self._error_fd = error_fd
        self._failure = None

    def failure(self):
        """Block until the sandbox exec'd the command (None) or gave up (the reason)."""
        if self._error_fd is not None:
            chunks = []
            while True:
                chunk = os.read(self._error_fd, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(self._error_fd)
            self._error_fd = None
            self._failure = b"".join(chunks).decode("utf-8", "replace") or None
        return self._failure

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def sandbox_argv(spec, error_fd):
    spec = dict(spec, error_fd=error_fd)
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), json.dumps(spec)]


def start_in_pod(ctx, pod, container, command, popen=subprocess.Popen, **popen_kwargs):
    """Start ``command`` in the pod sandbox with ``popen`` (subprocess.Popen by default) and return a Started."""
    spec = sandbox_spec(ctx, pod, container, command)
    read_fd, write_fd = os.pipe()
    try:
        process = popen(sandbox_argv(spec, write_fd), pass_fds=(write_fd,), start_new_session=True,
                        env={"PATH": CONTAINER_PATH}, **popen_kwargs)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return Started(process, read_fd)


def run_in_pod(ctx, pod, container, command, stdin=None, timeout=60):
    """Run ``command`` in ``pod``/``container`` with its volume mounts; return ``(stdout, stderr, rc)``.

    Raises PodExecError when the pod cannot run it (not Running, unknown container,
    command not found) and subprocess.TimeoutExpired after ``timeout`` seconds.
    """
    started = start_in_pod(ctx, pod, container, command, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process = started.process
    try:
        stdout, stderr = process.communicate(stdin or b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        started.kill()
        process.communicate()
        raise
    failure = started.failure()
    if failure:
        raise PodExecError(failure, reason="InternalError", code=500)
    return stdout, stderr, process.returncode


# ---- the sandbox process ------------------------------------------------------------

def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(libc, source, target, fstype, flags, data=None):
    args = [value.encode() if value is not None else None for value in (source, target, fstype)]
    options = data.encode() if data is not None else None
    if libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, "mount %s on %s: %s" % (source, target, os.strerror(code)))


def _mirror(libc, host_dir, sandbox_dir):
    """Fill the (tmpfs) ``sandbox_dir`` with bind mounts of every entry of ``host_dir``."""
    for entry in sorted(os.listdir(host_dir)):
        source = os.path.join(host_dir, entry)
        target = os.path.join(sandbox_dir, entry)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            os.mkdir(target)
            _mount(libc, source, target, None, _MS_BIND | _MS_REC)
        else:
            with open(target, "wb"):
                pass
            try:
                _mount(libc, source, target, None, _MS_BIND)
            except OSError:
                os.unlink(target)


def _resolve_in_root(root, target):
    """``target`` with symlinks resolved inside the sandbox root, as runc resolves a mount
    destination inside the rootfs (securejoin): e.g. ``/var/run/secrets/...`` becomes
    ``/run/secrets/...`` where ``/var/run`` links to ``/run``."""
    pending = [p for p in target.split("/") if p]
    current = "/"
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = os.path.dirname(current) or "/"
            continue
        child = os.path.join(current, part)
        if os.path.islink(root + child):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, "mount path %s: too many levels of symbolic links" % target)
            link = os.readlink(root + child)
            pending = [p for p in link.split("/") if p and p != "."] + pending
            current = "/" if link.startswith("/") else current
            continue
        current = child
    return current


def _prepare_mount_point(libc, root, target, volume_targets, shadowed):
    """Create ``target`` inside the sandbox without creating anything on the host.

    Below a host directory a missing component is made by replacing that directory,
    in the sandbox only, with a tmpfs that mirrors it; below a volume it is made in
    the volume, as the kubelet does.
    """
    parts = [p for p in target.split("/") if p]
    current = "/"
    for part in parts:
        child = os.path.join(current, part)
        inside = root + child
        if not os.path.lexists(inside):
            in_volume = any(current == v or current.startswith(v.rstrip("/") + "/") for v in volume_targets)
            if not in_volume and current not in shadowed:
                _mount(libc, "tmpfs", root + current if current != "/" else root, "tmpfs", 0, "mode=755")
                _mirror(libc, current, root + current if current != "/" else root)
                shadowed.add(current)
            os.mkdir(inside)
            if not in_volume:
                # A directory of ours in a tmpfs: what goes below it needs no mirroring.
                shadowed.add(child)
        elif os.path.islink(inside) or not os.path.isdir(inside):
            raise OSError(errno.ENOTDIR, "mount path %s is not a directory in the pod" % child)
        current = child


def _sandbox_main(spec):
    error_fd = spec["error_fd"]
    os.set_inheritable(error_fd, False)
    try:
        libc = _libc()
        if libc.unshare(_CLONE_NEWNS) != 0:
            code = ctypes.get_errno()
            raise OSError(code, "unshare(CLONE_NEWNS): %s (the lab runs pod commands as root)" % os.strerror(code))
        _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
        root = spec["root"]
        _mount(libc, "tmpfs", root, "tmpfs", 0, "mode=755")
        _mirror(libc, "/", root)
        shadowed = {"/"}
        mounted = []
        for mount in spec["mounts"]:
            target = _resolve_in_root(root, mount["target"])
            _prepare_mount_point(libc, root, target, mounted, shadowed)
            inside = root + target if target != "/" else root
            _mount(libc, mount["source"], inside, None, _MS_BIND | _MS_REC)
            if mount["readOnly"]:
                _mount(libc, None, inside, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
            mounted.append(target)
        os.chroot(root)
        os.chdir(spec["workdir"])
    except OSError as exc:
        os.write(error_fd, ("failed to set up the pod sandbox: %s" % exc).encode())
        return 126
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            why = 'exec: "%s": executable file not found in $PATH' % argv[0]
        else:
            why = 'exec: "%s": %s' % (argv[0], exc.strerror)
        os.write(error_fd, ("OCI runtime exec failed: exec failed: unable to start container process: %s: unknown" % why).encode())
    return 127


if __name__ == "__main__":
    sys.exit(_sandbox_main(json.loads(sys.argv[1])))
