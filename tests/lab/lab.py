# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab: S3, a real Kubernetes control plane and the Longhorn emulator.

``Lab(state_dir).start()`` brings everything up on loopback with random ports and
writes ``lab.json`` (kubeconfig path, S3 endpoint, bucket, credentials) into the
state directory.  ``wipe_cluster()`` is the lab's ``make k3s-teardown && make k3s``:
every Kubernetes object and all node-local volume data are gone, the bucket survives,
and Longhorn comes back freshly installed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.parse

from .context import LONGHORN_NAMESPACE, LabConfig, LabContext
from .controllers.runtime import ControllerManager
from .faults import Faults

LOG = logging.getLogger("lab")

LAB_INFO_FILE = "lab.json"

# Controller modules, in the order their controllers are added. Each exposes CONTROLLERS.
# kube-controller-manager binds volumes and runs workloads; the lab plays only Longhorn's
# part (its CSI provisioner and attacher among it).
CONTROLLER_MODULES = (
    "tests.lab.controllers.csi",
    "tests.lab.longhorn.settings_controller",
    "tests.lab.longhorn.backup_target_controller",
    "tests.lab.longhorn.backup_volume_controller",
    "tests.lab.longhorn.snapshot_controller",
    "tests.lab.longhorn.backup_controller",
    "tests.lab.longhorn.volume_controller",
    "tests.lab.longhorn.system_backup_controller",
    "tests.lab.longhorn.system_restore_controller",
)
# Admission modules: each exposes register(chain, ctx), like Longhorn's webhook server.
WEBHOOK_MODULES = (
    "tests.lab.longhorn.webhooks",
    "tests.lab.longhorn.volume_webhooks",
    "tests.lab.longhorn.system_webhooks",
)


def _import(name):
    module = __import__(name, fromlist=["_"])
    return module


@dataclasses.dataclass
class ApiRequest:
    """One request through the lab's API proxy, as a test trigger sees it (never its body)."""

    verb: str
    group: str
    plural: str
    namespace: str
    name: str
    status: int

    @classmethod
    def parse(cls, verb, path, status, body=b""):
        """``/api/v1[/namespaces/NS]/PLURAL[/NAME]`` or ``/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME]``;
        the name of a create comes from the body's metadata."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            group, rest = "", []
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else ""
        if verb == "create" and not name and body:
            try:
                name = (json.loads(body).get("metadata") or {}).get("name") or ""
            except (ValueError, AttributeError):
                name = ""
        return cls(verb=verb, group=group, plural=plural, namespace=namespace, name=name, status=int(status or 0))

    def created(self, key, name=None):
        """Whether this request created an object of ``key`` (group, plural), named ``name`` if given."""
        return self.verb == "create" and (self.group, self.plural) == tuple(key) and self.status == 201 \
            and (name is None or self.name == name)


class Lab:
    """``Lab(state_dir, template=None, s3=None, controllers=CONTROLLER_MODULES, **options)``

    ``template``     a stopped lab's state directory (see prepare_template) whose datastore seeds this one's;
    ``s3``           a running S3Server to use (and leave running); by default the lab starts its own;
    ``controllers``  the modules whose CONTROLLERS run. With ``()`` a test adds the controllers it
                     exercises to ``manager`` and calls ``start_controllers()``. Kubernetes' own
                     controllers, the scheduler and the node agent run either way.
    """

    def __init__(self, state_dir=None, config=None, template=None, *, s3=None, controllers=CONTROLLER_MODULES, **overrides):
        if config is None:
            state_dir = state_dir or tempfile.mkdtemp(prefix="longhorn-dr-lab-")
            config = LabConfig(state_dir=os.path.abspath(state_dir), **overrides)
        self.config = config
        self.template = template
        self.controller_modules = tuple(controllers)
        self.store = None
        self.admin = None
        self.s3 = s3
        self._owns_s3 = s3 is None
        self.cluster = None
        self.admission = None
        self.proxy = None
        self.faults = Faults()
        self.ctx = None
        self.manager = None
        self.token = None
        self._lock = threading.Lock()
        self._request_listeners = []
        self.started = False

    # ---- lifecycle --------------------------------------------------------
    def start(self):
        from . import node_exec
        from .admission import AdmissionChain, AdmissionServer
        from .api_client import ApiClient
        from .control_plane.cluster import ControlPlane
        from .s3 import S3Server

        os.makedirs(self.config.state_dir, exist_ok=True)
        if self._owns_s3:
            self.s3 = S3Server(bucket=self.config.bucket, region=self.config.region, object_lock=self.config.object_lock,
                               port=self.config.s3_port)
            self.s3.start()
        cluster_dir = self.config.path("cluster")
        if self.template:
            seed_cluster_dir(self.template, cluster_dir)
        self.cluster = ControlPlane(cluster_dir, api_port=self.config.api_port)
        # The node's runtime reads pods, claims and volumes as Longhorn's service account, as the
        # emulator does: only the collection (and tests) use the admin user the audit log follows.
        self.cluster.exec_command = node_exec.command(self.config.state_dir, self.cluster.kubeconfig_for("longhorn"))
        self.cluster.start()
        self.admin = ApiClient.from_kubeconfig(self.cluster.kubeconfig)
        self._grant_longhorn_service_account()
        self.store = ApiClient.from_kubeconfig(self.cluster.kubeconfig_for("longhorn"), user_agent="longhorn-manager/%s" % self.config.longhorn_version)
        self.token = self.cluster.pki.token("admin")
        self.ctx = LabContext(config=self.config, store=self.store, s3=self.s3, faults=self.faults)
        chain = AdmissionChain()
        for name in WEBHOOK_MODULES:
            _import(name).register(chain, self.ctx)
        self.admission = AdmissionServer(chain, self.store.registry, self.cluster.pki.path("webhook-serving.crt"),
                                         self.cluster.pki.path("webhook-serving.key")).start()
        self._start_api_proxy()
        self._install()
        self.manager = ControllerManager(self.store)
        for name in self.controller_modules:
            for controller_class in _import(name).CONTROLLERS:
                self.manager.add(controller_class(self.ctx))
        if self.controller_modules:
            self.start_controllers()
        self.started = True
        self.write_info()
        return self

    def start_controllers(self):
        """Informers for what the manager's controllers watch, synced, then the controllers."""
        self._start_informers()
        self.manager.start()
        return self

    def _start_api_proxy(self):
        """The collection's way in: a proxy that can inject API faults and logs each request it relays."""
        from .api_proxy import ApiProxy
        from .audit import AuditLog
        import yaml
        pki = self.cluster.pki
        self._audit = AuditLog(self.audit_log)
        self.proxy = ApiProxy(self.cluster.api_server, pki.ca_cert, pki.path("apiserver.crt"), pki.path("apiserver.key"),
                              self.faults, port=self.config.api_port, on_request=self._audit_request).start()
        with open(self.cluster.kubeconfig, encoding="utf-8") as handle:
            kubeconfig = yaml.safe_load(handle)
        cluster = kubeconfig["clusters"][0]["cluster"]
        cluster["server"] = self.proxy.url
        # Embedded, as in the kubeconfig k3s writes (/etc/rancher/k3s/k3s.yaml), so it can be copied anywhere.
        with open(cluster.pop("certificate-authority"), "rb") as handle:
            cluster["certificate-authority-data"] = base64.b64encode(handle.read()).decode()
        kubeconfig["contexts"][0]["context"]["namespace"] = "default"
        with open(self.kubeconfig + ".tmp", "w", encoding="utf-8") as handle:
            yaml.safe_dump(kubeconfig, handle, default_flow_style=False)
        os.chmod(self.kubeconfig + ".tmp", 0o600)
        os.replace(self.kubeconfig + ".tmp", self.kubeconfig)

    _VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

    def add_request_listener(self, listener):
        """``listener(request)`` for each request the collection's clients make through the lab's API
        proxy (an :class:`ApiRequest`), called once the API server has answered and before the client
        has the answer. It runs on the proxy's thread: it must be quick and must not call the API."""
        with self._lock:
            self._request_listeners.append(listener)

    def _audit_request(self, method, target, status, headers, body=b""):
        split = urllib.parse.urlsplit(target)
        query = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(split.query).items()}
        path = urllib.parse.unquote(split.path)
        verb = self._VERBS.get(method, method.lower())
        if method == "GET" and str(query.get("watch", "")).lower() in ("1", "true"):
            verb = "watch"
        streaming = path.rsplit("/", 1)[-1] in ("exec", "log", "attach", "portforward")
        write = verb in ("create", "update", "patch", "delete") and not streaming
        self._audit.record(verb=verb, method=method, path=path, query=query, dry_run="dryRun" in query, write=write,
                           code=status, user_agent=headers.get("user-agent", ""))
        with self._lock:
            listeners = list(self._request_listeners)
        if listeners:
            request = ApiRequest.parse(verb, path, status, body)
            for listener in listeners:
                listener(request)

    def _start_informers(self):
        watched = sorted({key for controller in self.manager.controllers() for key in controller.watches})
        self.store.start_informers(watched)
        if not self.store.wait_synced(timeout=60):
            raise RuntimeError("the lab's informers did not sync within 60 s")

    def _grant_longhorn_service_account(self):
        """longhorn-manager's ClusterRole (chart templates/clusterrole.yaml) allows nearly every verb on
        every group it touches; the lab binds its service account to cluster-admin to the same effect."""
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "longhorn-bind"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "longhorn-service-account", "namespace": LONGHORN_NAMESPACE}]}
        if self.admin.try_get(("rbac.authorization.k8s.io", "clusterrolebindings"), "", "longhorn-bind") is None:
            self.admin.create(("rbac.authorization.k8s.io", "clusterrolebindings"), binding)
        # RBAC's caches follow the binding within moments; wait so the first controller write passes.
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"verb": "create", "group": "apiextensions.k8s.io", "resource": "customresourcedefinitions"}}}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, answer = self.cluster.request("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", identity="longhorn",
                                                  method="POST", body=review)
            if status == 201 and answer["status"].get("allowed"):
                return
            time.sleep(0.1)
        raise RuntimeError("the Longhorn service account was not granted its role within 30 s")

    def _install(self):
        """Longhorn's webhook configurations first (its CRs are admitted by them), then Longhorn itself."""
        self.admission.register(self.admin, self.cluster.pki.ca_cert)
        from .longhorn.install import install_longhorn
        install_longhorn(self.ctx)
        # A namespace for apps, as every cluster has.
        if self.store.try_get("namespaces", "", "default") is None:
            self.store.create("namespaces", {"metadata": {"name": "default"}})

    def stop(self):
        if self.manager is not None:
            self.manager.stop()
        if self.admission is not None:
            self.admission.stop()
        if self.proxy is not None:
            self.proxy.stop()
            self._audit.close()
        for client in (self.store, self.admin):
            if client is not None:
                client.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.s3 is not None and self._owns_s3:
            self.s3.stop()
        self.started = False
        info = os.path.join(self.config.state_dir, LAB_INFO_FILE)
        if os.path.exists(info):
            os.unlink(info)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- what clients need ------------------------------------------------
    @property
    def kubeconfig(self):
        return self.config.path("kubeconfig")

    @property
    def audit_log(self):
        return self.config.path("audit.log")

    @property
    def s3_endpoint(self):
        return self.s3.endpoint

    @property
    def bucket(self):
        return self.config.bucket

    @property
    def region(self):
        return self.config.region

    @property
    def access_key(self):
        return self.s3.access_key

    @property
    def secret_key(self):
        return self.s3.secret_key

    @property
    def state_dir(self):
        return self.config.state_dir

    @property
    def api_server(self):
        return self.proxy.url

    @property
    def backup_target_url(self):
        """The URL a user would configure for this bucket (ref §3.1)."""
        return "s3://%s@%s/" % (self.bucket, self.region)

    def info(self):
        return {
            "kubeconfig": self.kubeconfig,
            "api_server": self.api_server,
            "s3_endpoint": self.s3_endpoint,
            "bucket": self.bucket,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "backup_target_url": self.backup_target_url,
            "longhorn_namespace": LONGHORN_NAMESPACE,
            "longhorn_version": self.config.longhorn_version,
            "audit_log": self.audit_log,
            "state_dir": self.state_dir,
            "pid": os.getpid(),
        }

    def write_info(self, extra=None):
        info = self.info()
        info.update(extra or {})
        path = self.config.path(LAB_INFO_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return info

    # ---- operations -------------------------------------------------------
    def wait_idle(self, timeout=10.0):
        return self.manager.wait_idle(timeout=timeout)

    def wipe_cluster(self):
        """``make k3s-teardown && make k3s``: every Kubernetes object (the datastore) and all node-local
        volume data go, the bucket survives, then Longhorn is installed again."""
        with self._lock:
            self.store.stop()
            self.cluster.wipe()
            if self.template:
                shutil.copytree(os.path.join(self.template, "cluster", "db"), self.config.path("cluster", "db"))
            for sub in ("volumes", "snapshots", "pods"):
                shutil.rmtree(self.config.path(sub), ignore_errors=True)
            self.cluster.start()
            self._grant_longhorn_service_account()
            self.store.registry.refresh()
            self._install()
            self._start_informers()
            self.manager.resync()

    def audit_entries(self):
        from .audit import read_audit
        if not os.path.exists(self.audit_log):
            return []
        return read_audit(self.audit_log)

    def audit_mark(self):
        """Number of audit entries so far; pass to ``writes_since`` to see what a step wrote."""
        return len(self.audit_entries())

    def writes_since(self, mark):
        """Write requests that changed something: not dry runs, and not refused (code >= 400 stores nothing)."""
        return [e for e in self.audit_entries()[mark:]
                if e.get("write") and not e.get("dryRun") and 0 < int(e.get("code") or 0) < 400]

    # ---- faults -----------------------------------------------------------
    def s3_fault(self, mode, **kwargs):
        self.s3.faults.set(mode, **kwargs)

    def api_fault(self, path, **kwargs):
        return self.faults.add_api_fault(path, **kwargs)

    def fail_restore(self, volume_name):
        self.faults.fail_restore(volume_name)

    def fail_backup(self, volume_name):
        self.faults.fail_backup(volume_name)

    def damage_block(self, volume_name, backup_name=None, mode="corrupt"):
        from .longhorn import bucket_faults
        if mode == "corrupt":
            return bucket_faults.corrupt_block(self.ctx, volume_name, backup_name)
        if mode == "delete":
            return bucket_faults.delete_block(self.ctx, volume_name, backup_name)
        raise ValueError("mode must be corrupt or delete, not %r" % mode)

    def clear_faults(self):
        self.faults.clear()
        self.s3.faults.clear()


def seed_cluster_dir(template, cluster_dir):
    """Copy a template's control-plane state (PKI, datastore) into ``cluster_dir`` unless it has a datastore:
    a ControlPlane there starts in seconds, with Kubernetes bootstrapped and Longhorn's objects in place."""
    if not os.path.exists(os.path.join(str(cluster_dir), "db")):
        shutil.copytree(os.path.join(template, "cluster"), str(cluster_dir), ignore=shutil.ignore_patterns("logs", "audit.log"),
                        dirs_exist_ok=True)
    return str(cluster_dir)


# The options that shape what a lab's datastore holds once Longhorn is installed (install_longhorn
# reads only these); the others (speeds, step delay, bucket, ports) act at run time.
TEMPLATE_SHAPING = ("longhorn_version", "legacy_backup_target_settings")


def prepare_template(root, **options):
    """A stopped lab under ``root`` whose datastore (Kubernetes bootstrapped, Longhorn installed as
    ``options`` shape it) seeds ``Lab(template=...)``, which then starts in seconds. Built once per
    shaping; processes sharing ``root`` (pytest-xdist workers) wait for the one that builds it."""
    import fcntl
    defaults = LabConfig(state_dir="", **options)
    shaping = {key: getattr(defaults, key) for key in TEMPLATE_SHAPING}
    path = os.path.join(root, hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12])
    ready = os.path.join(path, "template-ready")
    os.makedirs(root, exist_ok=True)
    with open(path + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(ready):
            shutil.rmtree(path, ignore_errors=True)
            Lab(path, **shaping).start().stop()
            with open(ready, "w", encoding="utf-8") as handle:
                json.dump(shaping, handle, sort_keys=True)
    return path
