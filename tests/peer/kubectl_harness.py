# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kubectl (the lab's own build, v1.36.3) against a lab ControlPlane, for the peer tests."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time

import yaml

from tests.lab import node_exec
from tests.lab.control_plane import build

KUBERNETES_VERSION = "v1.36.3"


@dataclasses.dataclass
class Run:
    argv: list
    returncode: int
    stdout: str
    stderr: str

    def __str__(self):
        return "kubectl %s -> exit %d\nstdout: %s\nstderr: %s" % (" ".join(self.argv), self.returncode, self.stdout[-3000:], self.stderr[-3000:])

    def json(self):
        return json.loads(self.stdout)


class Kubectl:
    """Runs kubectl with a kubeconfig of the control plane; HOME is private (kubectl's discovery cache)."""

    def __init__(self, control_plane, home):
        self.control_plane = control_plane
        self.binary = build.binary("kubectl")
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)

    def __call__(self, *args, identity="admin", stdin=None, timeout=60):
        env = {key: value for key, value in os.environ.items() if key not in ("KUBECONFIG", "KUBECTL_EXTERNAL_DIFF")}
        env.update(HOME=self.home, KUBECONFIG=self.control_plane.kubeconfig_for(identity))
        argv = [str(arg) for arg in args]
        if isinstance(stdin, (dict, list)):
            stdin = yaml.safe_dump_all(stdin) if isinstance(stdin, list) else yaml.safe_dump(stdin)
        completed = subprocess.run([self.binary] + argv, input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        return Run(argv, completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args, **kwargs):
        """Run, and fail the test unless kubectl exits 0."""
        run = self(*args, **kwargs)
        assert run.returncode == 0, str(run)
        return run

    def eventually(self, predicate, *args, timeout=30.0, **kwargs):
        """Re-run until ``predicate(run)`` holds (RBAC and controllers act asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self(*args, **kwargs)
            if predicate(run):
                return run
            if time.monotonic() > deadline:
                raise AssertionError("condition not met within %.0fs; last: %s" % (timeout, run))
            time.sleep(0.5)


def start_control_plane(state_dir):
    """A control plane whose node runs exec through the lab's node runtime (pods' volumes mounted)."""
    return lab_control_plane(str(state_dir)).start()


def lab_control_plane(state_dir):
    return node_exec.control_plane(str(state_dir))
