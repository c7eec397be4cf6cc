# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real Kubernetes control plane on loopback, laid out as a k3s server runs it.

kine serves the etcd API over SQLite (k3s's default datastore); kube-apiserver,
kube-controller-manager and kube-scheduler are the upstream programs built by
``build.py``.  The node is the lab's node agent (``tests/lab/node_agent``, a virtual-kubelet
provider): k3s servers run their own agent too.  Everything listens on 127.0.0.1 with ports
picked at start.

State under ``<state_dir>``:  ``tls/`` (certificates, keys, tokens: kept across restarts,
as k3s keeps ``server/tls``), ``db/state.db`` (the datastore), ``logs/`` (one file per process),
``kubeconfig`` (the admin user) and ``kubeconfig-<identity>`` for the other identities.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from . import build
from .pki import IDENTITIES, SERVICE_ACCOUNT_ISSUER, SERVICE_CIDR, Pki

# Audit every request at Metadata level: the lab's write accounting reads this log.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}

# k3s's default controller set: every controller, plus the bootstrap token cleaner; no cloud provider.
CONTROLLERS = "*,tokencleaner,-service,-route,-cloud-node-lifecycle"


class ControlPlaneError(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kubeconfig(server, ca_path, token, user):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority": ca_path}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
        "current-context": "lab",
    }


NODE_NAME = "lab-node-1"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class ControlPlane:
    """The cluster's servers and its node.  ``exec_command`` is the argv prefix the node agent runs
    for ``kubectl exec`` (followed by NAMESPACE POD CONTAINER -- COMMAND...); the lab passes the
    command that runs it with the pod's volumes (``tests/lab/node_exec.py``)."""

    def __init__(self, state_dir, api_port=0, exec_command=None):
        self.state_dir = os.path.abspath(state_dir)
        self.pki = Pki(self.path("tls"))
        self.api_port = api_port
        self.exec_command = list(exec_command or ["/bin/sh", "-c", 'echo "this lab node runs no commands" >&2; exit 126', "lab-exec"])
        self.kine_port = None
        self._processes = {}
        self._logs = []

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    @property
    def api_server(self):
        return "https://127.0.0.1:%d" % self.api_port

    @property
    def kubeconfig(self):
        return self.path("kubeconfig")

    def kubeconfig_for(self, identity):
        return self.kubeconfig if identity == "admin" else self.path("kubeconfig-%s" % identity)

    # ---- lifecycle ----------------------------------------------------------------
    def start(self, timeout=90.0, attempts=3):
        """Start everything; a port taken between picking and binding it (parallel labs) means another try."""
        fixed_port = self.api_port
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except ControlPlaneError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.api_port = fixed_port
        return self

    def _start_once(self, timeout):
        started = time.monotonic()
        os.makedirs(self.path("logs"), exist_ok=True)
        os.makedirs(self.path("db"), exist_ok=True)
        self.pki.ensure()
        self.api_port = self.api_port or free_port()
        self.kine_port = free_port()
        self._write_kubeconfigs()
        try:
            self._start_kine()
            self._start_apiserver()
            self._wait_ready("/readyz", deadline=started + timeout)
            self._start_controller_manager()
            self._start_scheduler()
            # Pods are refused until their namespace's ServiceAccount exists (ServiceAccount
            # admission): the cluster is usable once the controller-manager has made "default".
            self._wait_ready("/api/v1/namespaces/default/serviceaccounts/default", deadline=started + timeout)
            self._start_node_agent()
            self._wait_node_ready(deadline=started + timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _spawn(self, name, argv, env=None):
        log = open(self.path("logs", name + ".log"), "ab")  # pylint: disable=consider-using-with
        self._logs.append(log)
        # Own process group: a test runner's Ctrl-C reaches us, and stop() ends the whole tree.
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                   start_new_session=True, cwd=self.state_dir, env=env)
        self._processes[name] = process
        return process

    def _start_kine(self):
        # The DSN k3s uses for its SQLite datastore (pkg/cluster/managed.go, kine's sqlite driver).
        dsn = "sqlite://%s?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate" % self.path("db", "state.db")
        self._spawn("kine", [build.binary("kine"), "--endpoint", dsn, "--listen-address", "127.0.0.1:%d" % self.kine_port,
                             "--metrics-bind-address", "0"])
        self._wait_port(self.kine_port, "kine", time.monotonic() + 30)

    def _start_apiserver(self):
        pki = self.pki
        with open(self.path("audit-policy.json"), "w", encoding="utf-8") as handle:
            json.dump(AUDIT_POLICY, handle)
        self._spawn("kube-apiserver", [
            build.binary("kube-apiserver"),
            "--etcd-servers=http://127.0.0.1:%d" % self.kine_port,
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=%d" % self.api_port,
            "--tls-cert-file=%s" % pki.path("apiserver.crt"), "--tls-private-key-file=%s" % pki.path("apiserver.key"),
            "--client-ca-file=%s" % pki.ca_cert,
            "--requestheader-client-ca-file=%s" % pki.path("request-header-ca.crt"),
            "--requestheader-allowed-names=system:auth-proxy",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--proxy-client-cert-file=%s" % pki.path("client-auth-proxy.crt"),
            "--proxy-client-key-file=%s" % pki.path("client-auth-proxy.key"),
            "--token-auth-file=%s" % pki.path("tokens.csv"),
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-cluster-ip-range=%s" % SERVICE_CIDR,
            "--service-account-issuer=%s" % SERVICE_ACCOUNT_ISSUER,
            "--api-audiences=%s,k3s" % SERVICE_ACCOUNT_ISSUER,
            "--service-account-key-file=%s" % pki.path("service-account.pub"),
            "--service-account-signing-key-file=%s" % pki.path("service-account.key"),
            "--kubelet-client-certificate=%s" % pki.path("apiserver-kubelet-client.crt"),
            "--kubelet-client-key=%s" % pki.path("apiserver-kubelet-client.key"),
            "--kubelet-certificate-authority=%s" % pki.ca_cert,
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            "--audit-policy-file=%s" % self.path("audit-policy.json"),
            "--audit-log-path=%s" % self.path("audit.log"),
            "--audit-log-format=json",
            "--audit-log-maxbackup=1",
            "--audit-log-maxsize=200",
        ])

    def _start_controller_manager(self):
        pki = self.pki
        config = self.kubeconfig_for("controller-manager")
        self._spawn("kube-controller-manager", [
            build.binary("kube-controller-manager"),
            "--kubeconfig=%s" % config,
            "--authentication-kubeconfig=%s" % config, "--authorization-kubeconfig=%s" % config,
            # No serving port: nothing here asks its healthz, and a free port picked now could be taken
            # by a parallel lab before the process binds it.
            "--secure-port=0",
            "--leader-elect=false",
            "--controllers=%s" % CONTROLLERS,
            "--use-service-account-credentials=true",
            "--service-account-private-key-file=%s" % pki.path("service-account.key"),
            "--root-ca-file=%s" % pki.ca_cert,
            "--cluster-signing-cert-file=%s" % pki.ca_cert, "--cluster-signing-key-file=%s" % pki.path("ca.key"),
            "--configure-cloud-routes=false",
            "--profiling=false",
        ])

    def _start_scheduler(self):
        config = self.kubeconfig_for("scheduler")
        self._spawn("kube-scheduler", [
            build.binary("kube-scheduler"),
            "--kubeconfig=%s" % config,
            "--authentication-kubeconfig=%s" % config, "--authorization-kubeconfig=%s" % config,
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
        ])

    def _start_node_agent(self):
        pki = self.pki
        argv = [build.binary("lab-node-agent"),
                "--kubeconfig=%s" % self.kubeconfig_for("node-agent"),
                "--node-name=%s" % NODE_NAME,
                "--listen-port=%d" % free_port(),
                "--tls-cert-file=%s" % pki.path("node-agent-serving.crt"),
                "--tls-private-key-file=%s" % pki.path("node-agent-serving.key"),
                "--client-ca-file=%s" % pki.ca_cert]
        argv.extend("--exec-command=%s" % part for part in self.exec_command)
        # The exec command may be the lab's own Python (python -m tests.lab.node_exec): it runs in
        # the agent's environment, from the state directory, so the checkout goes on its path.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
        self._spawn("lab-node-agent", argv, env=env)

    def _wait_node_ready(self, deadline):
        """The node is Ready and untainted: the node lifecycle controller lifts not-ready, then pods schedule."""
        last = None
        while time.monotonic() < deadline:
            self._check_alive()
            status, node = self.request("/api/v1/nodes/%s" % NODE_NAME, timeout=2.0)
            if status == 200:
                ready = [c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"]
                taints = node.get("spec", {}).get("taints") or []
                if ready and ready[0].get("status") == "True" and not taints:
                    return
                last = "Ready=%s taints=%s" % (ready[0].get("status") if ready else None, [t.get("key") for t in taints])
            else:
                last = "%s" % status
            time.sleep(0.1)
        raise ControlPlaneError("node %s not Ready in time (%s); node agent log tail:\n%s"
                                % (NODE_NAME, last, self.log_tail("lab-node-agent")))

    def _write_kubeconfigs(self):
        import yaml  # the lab's venv has PyYAML (ansible-core needs it)
        for name, user, _groups in IDENTITIES:
            body = _kubeconfig(self.api_server, self.pki.ca_cert, self.pki.token(name), user)
            target = self.kubeconfig_for(name)
            with open(target + ".tmp", "w", encoding="utf-8") as handle:
                yaml.safe_dump(body, handle, default_flow_style=False)
            os.chmod(target + ".tmp", 0o600)
            os.replace(target + ".tmp", target)

    # ---- readiness ----------------------------------------------------------------
    def _check_alive(self):
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise ControlPlaneError("%s exited with %s; last lines of %s:\n%s" % (
                    name, process.returncode, self.path("logs", name + ".log"), self.log_tail(name)))

    def log_tail(self, name, lines=25):
        try:
            with open(self.path("logs", name + ".log"), encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def _wait_port(self, port, name, deadline):
        while time.monotonic() < deadline:
            self._check_alive()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise ControlPlaneError("%s did not listen on 127.0.0.1:%d in time" % (name, port))

    def request(self, path, identity="admin", method="GET", body=None, timeout=10.0):
        """One HTTPS request to the API server as ``identity``: (status, parsed JSON or text)."""
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_server + path, data=data, method=method, headers={
            "Authorization": "Bearer %s" % self.pki.token(identity), "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def _wait_ready(self, path, deadline):
        last = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.request(path, timeout=2.0)
                if status == 200:
                    return
                last = "%s %s" % (status, body)
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ControlPlaneError("the control plane did not answer %s in time (last answer: %s); log tail:\n%s"
                                % (path, last, self.log_tail("kube-apiserver")))

    def stop(self, timeout=10.0):
        # One at a time, in reverse start order: the API server shuts down gracefully only while
        # its datastore still answers, so kine goes last.
        for name in reversed(list(self._processes)):
            process = self._processes[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def wipe(self):
        """``k3s-killall.sh`` + removing the datastore: the next start is a new, empty cluster."""
        self.stop()
        shutil.rmtree(self.path("db"), ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
