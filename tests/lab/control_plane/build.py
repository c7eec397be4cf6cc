# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the lab's upstream components from their own Go source, into a cache outside the checkout.

The pins live in ``tests/lab/components/go.mod`` (Kubernetes with the ``replace`` directives its
staging modules need, kine, and the node agent's libraries).  The cache is keyed by the Kubernetes
version and a hash of the module files, so a changed pin builds into a new directory and an
unchanged one is reused:  ``python -m tests.lab.control_plane.build`` prints the directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS_DIR = os.path.join(os.path.dirname(HERE), "components")


NODE_AGENT_DIR = os.path.join(os.path.dirname(HERE), "node_agent")
# (binary, main package, Go module it is built in).  The node agent is the project's own
# virtual-kubelet provider (tests/lab/node_agent), built in its own module.
COMPONENTS = (
    ("kine", "github.com/k3s-io/kine", COMPONENTS_DIR),
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", COMPONENTS_DIR),
    ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", COMPONENTS_DIR),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", COMPONENTS_DIR),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl", COMPONENTS_DIR),
    ("lab-node-agent", ".", NODE_AGENT_DIR),
)


class BuildError(Exception):
    pass


def kubernetes_version():
    with open(os.path.join(COMPONENTS_DIR, "go.mod"), encoding="utf-8") as handle:
        match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", handle.read(), re.M)
    if not match:
        raise BuildError("tests/lab/components/go.mod does not require k8s.io/kubernetes")
    return match.group(1)


def cache_root():
    explicit = os.environ.get("LAB_COMPONENTS_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "longhorn-dr-lab")


def _module_files(module):
    for root, _dirs, files in os.walk(module):
        for name in sorted(files):
            if name.endswith((".go", ".mod", ".sum")):
                yield os.path.join(root, name)


def cache_key(module):
    """One cache directory per Go module and content: a change to the node agent leaves Kubernetes built."""
    digest = hashlib.sha256()
    for path in sorted(_module_files(module)) + [os.path.abspath(__file__)]:
        with open(path, "rb") as handle:
            digest.update(os.path.relpath(path, HERE).encode() + b"\0" + handle.read())
    label = "kubernetes-%s" % kubernetes_version() if module == COMPONENTS_DIR else os.path.basename(module)
    return "%s-%s" % (label, digest.hexdigest()[:12])


def _module_of(name):
    for component, _package, module in COMPONENTS:
        if component == name:
            return module
    raise BuildError("unknown lab component %r" % name)


def binary_path(name):
    return os.path.join(cache_root(), cache_key(_module_of(name)), "bin", name)


def binary(name):
    """Path of a built component; raises BuildError when the cache does not hold it."""
    path = binary_path(name)
    if not os.access(path, os.X_OK):
        raise BuildError("%s is not built (expected %s); run: make lab-components" % (name, path))
    return path


def _ldflags(version):
    # As k3s's scripts/build-common-env-vars.sh does: without these the servers report v0.0.0-master.
    major, minor = version.lstrip("v").split(".")[:2]
    pairs = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
             "buildDate": "1970-01-01T00:00:00Z"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags.extend("-X %s.%s=%s" % (package, key, value) for key, value in pairs.items())
    return " ".join(flags)


def _go():
    go = shutil.which("go")
    if go is None:
        raise BuildError("go is not on PATH: the lab needs Go >= 1.26 (https://go.dev/dl/)")
    return go


def _heartbeat(label, started, stop):
    while not stop.wait(30):
        print("  ... still building %s (%ds)" % (label, time.monotonic() - started), flush=True)


def build(force=False, out=sys.stdout):
    """Build every component the cache does not hold yet: one ``go build`` per Go module, so the
    packages the Kubernetes programs share compile once and their links run side by side."""
    missing = [(name, pkg, module) for name, pkg, module in COMPONENTS if force or not os.access(binary_path(name), os.X_OK)]
    if not missing:
        return
    go = _go()
    version = kubernetes_version()
    env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED=os.environ.get("CGO_ENABLED", "1"))
    total_start = time.monotonic()
    print("lab components: building %d of %d (Kubernetes %s) into %s; the first build takes minutes"
          % (len(missing), len(COMPONENTS), version, cache_root()), file=out, flush=True)
    modules = []
    for _name, _package, module in missing:
        if module not in modules:
            modules.append(module)
    for module in modules:
        names = [name for name, _package, m in missing if m == module]
        packages = [package for _name, package, m in missing if m == module]
        started = time.monotonic()
        print("  %s (%s)" % (", ".join(names), os.path.relpath(module, os.path.dirname(HERE))), file=out, flush=True)
        stop = threading.Event()
        threading.Thread(target=_heartbeat, args=(", ".join(names), started, stop), daemon=True).start()
        final_dir = os.path.dirname(binary_path(names[0]))
        os.makedirs(final_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix="build-", dir=final_dir)
        try:
            # With several packages, -o names a directory and each binary takes its package's last element.
            target = staging + os.sep if len(packages) > 1 else os.path.join(staging, names[0])
            result = subprocess.run([go, "build", "-trimpath", "-ldflags", _ldflags(version), "-o", target] + packages,
                                    cwd=module, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BuildError("go build %s failed (exit %d):\n%s" % (" ".join(packages), result.returncode, result.stderr[-4000:]))
            for name in names:
                os.replace(os.path.join(staging, name), binary_path(name))
        finally:
            stop.set()
            shutil.rmtree(staging, ignore_errors=True)
        print("      built in %.0fs" % (time.monotonic() - started), file=out, flush=True)
    print("lab components: done in %.0fs" % (time.monotonic() - total_start), file=out, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache holds the binaries")
    parser.add_argument("--print-paths", action="store_true", help="only print where each binary is (or will be)")
    args = parser.parse_args(argv)
    if args.print_paths:
        for name, _package, _module in COMPONENTS:
            print(binary_path(name))
        return 0
    try:
        build(force=args.force, out=sys.stderr)
    except BuildError as exc:
        print("lab components: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
