# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab node's container runtime for ``exec``: what the node agent runs for ``kubectl exec``.

The node agent (``tests/lab/node_agent``) calls

    python -m tests.lab.node_exec --state-dir DIR --kubeconfig FILE -- NAMESPACE POD CONTAINER -- COMMAND...

with the exec stream on stdin/stdout/stderr.  This reads the pod from the API server, resolves its
volumes (a Longhorn PV is the emulator's node-local volume directory, see ``pods.py``) and runs the
command in the pod sandbox, exiting with the command's status.  Exit 126 with a message on stderr
means the command could not be started in the pod, as a container runtime reports it.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import pods
from .context import LabConfig, LabContext

CANNOT_RUN = 126


def command(state_dir, kubeconfig):
    """The argv prefix the node agent runs for an exec (it appends NAMESPACE POD CONTAINER -- COMMAND...)."""
    return [sys.executable, "-m", "tests.lab.node_exec", "--state-dir", state_dir, "--kubeconfig", kubeconfig]


def control_plane(cluster_dir, state_dir=None, **kwargs):
    """A ControlPlane in ``cluster_dir`` whose node runs exec here, with volume data under ``state_dir``
    (default: ``cluster_dir``), reading the API as the cluster's admin."""
    from .control_plane.cluster import ControlPlane
    cluster_dir = os.path.abspath(cluster_dir)
    plane = ControlPlane(cluster_dir, **kwargs)
    plane.exec_command = command(os.path.abspath(state_dir or cluster_dir), plane.kubeconfig)
    return plane


def _context(state_dir, kubeconfig):
    from .api_client import ApiClient
    return LabContext(config=LabConfig(state_dir=state_dir), store=ApiClient.from_kubeconfig(kubeconfig))


def run(argv, stdin=None, stdout=None, stderr=None):
    parser = argparse.ArgumentParser(prog="python -m tests.lab.node_exec", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, help="the lab's state directory (volume data lives under it)")
    parser.add_argument("--kubeconfig", required=True, help="a kubeconfig allowed to read pods, claims, volumes, config maps and secrets")
    parser.add_argument("target", nargs=3, metavar=("NAMESPACE", "POD", "CONTAINER"))
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("expected ... NAMESPACE POD CONTAINER -- COMMAND..., got %r" % (argv,))
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    rest = argv[split + 1:]
    namespace, pod_name, container = args.target
    ctx = _context(os.path.abspath(args.state_dir), args.kubeconfig)
    pod = ctx.store.try_get("pods", namespace, pod_name)
    if pod is None:
        print('pods "%s" not found in namespace %s' % (pod_name, namespace), file=stderr or sys.stderr)
        return CANNOT_RUN
    try:
        started = pods.start_in_pod(ctx, pod, container, rest, stdin=stdin, stdout=stdout, stderr=stderr)
    except pods.PodExecError as exc:
        print(exc.message, file=stderr or sys.stderr)
        return CANNOT_RUN
    failure = started.failure()
    if failure:
        print(failure, file=stderr or sys.stderr)
        started.process.wait()
        return CANNOT_RUN
    return started.process.wait()


def main():
    # The sandbox inherits our standard streams: the exec stream goes straight to the command.
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
