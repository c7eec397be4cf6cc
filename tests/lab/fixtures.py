# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin: fixtures that give tests a running lab (or a real cluster).

``lab``          a fresh lab per test (function scope)
``lab_session``  one lab shared by a whole session (tests must not depend on its state)
``lab_factory``  start labs with options, e.g. ``lab_factory(longhorn_version="v1.7.2")``
``seeded_cluster`` a real control plane from the template with Longhorn's webhooks, no lab controllers
``target``       a real cluster + MinIO when LONGHORN_DR_TARGET_* is set, else ``lab_session``
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest

from . import node_exec
from .admission import AdmissionChain, AdmissionServer
from .api_client import ApiClient
from .context import LabConfig, LabContext
from .control_plane.cluster import ControlPlane
from .controllers.runtime import ControllerManager
from .lab import WEBHOOK_MODULES, Lab, prepare_template, seed_cluster_dir

REAL_TARGET_ENV = {
    "kubeconfig": "LONGHORN_DR_TARGET_KUBECONFIG",
    "s3_endpoint": "LONGHORN_DR_TARGET_S3_ENDPOINT",
    "bucket": "LONGHORN_DR_TARGET_BUCKET",
    "access_key": "LONGHORN_DR_TARGET_ACCESS_KEY",
    "secret_key": "LONGHORN_DR_TARGET_SECRET_KEY",
}


@dataclass
class RealTarget:
    """A real k3s + Longhorn + MinIO, configured through the environment (see tests/README.md)."""

    kubeconfig: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    is_lab: bool = False

    @property
    def backup_target_url(self):
        return "s3://%s@%s/" % (self.bucket, self.region)


def real_target_from_env(environ=None):
    environ = os.environ if environ is None else environ
    values = {key: environ.get(var) for key, var in REAL_TARGET_ENV.items()}
    if not any(values.values()):
        return None
    missing = [REAL_TARGET_ENV[k] for k, v in values.items() if not v]
    if missing:
        raise pytest.UsageError("a real target needs all of %s; missing: %s" % (", ".join(REAL_TARGET_ENV.values()), ", ".join(missing)))
    return RealTarget(region=environ.get("LONGHORN_DR_TARGET_REGION", "us-east-1"), **values)


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory):
    """``lab_template(**options)``: the state directory of a stopped lab to seed a new one from.

    A real control plane bootstraps Kubernetes and installs Longhorn in about 20 s; a lab seeded
    with a copy of that datastore starts in about 4 s. Built once per set of options and per
    pytest process (each xdist worker has its own).
    """
    root = tmp_path_factory.getbasetemp() / "lab-templates"

    def _template(**options):
        return prepare_template(str(root), **options)

    return _template


@pytest.fixture
def lab(tmp_path, lab_template):
    with Lab(str(tmp_path / "lab"), template=lab_template()) as running:
        running.is_lab = True
        yield running


@pytest.fixture(scope="session")
def lab_session(tmp_path_factory, lab_template):
    with Lab(str(tmp_path_factory.mktemp("lab-session")), template=lab_template()) as running:
        running.is_lab = True
        yield running


@pytest.fixture
def lab_factory(tmp_path, lab_template):
    started = []

    def _start(**options):
        running = Lab(str(tmp_path / ("lab-%d" % len(started))), template=lab_template(**options), **options).start()
        running.is_lab = True
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def target(request):
    real = real_target_from_env()
    if real is not None:
        return real
    return request.getfixturevalue("lab_session")


class SeededCluster:
    """A real control plane seeded from a lab template (Kubernetes bootstrapped, Longhorn's CRDs and
    objects installed), with Longhorn's webhooks served and a client as Longhorn's service account,
    but none of the lab's controllers: a test adds the ones it exercises to ``manager`` and calls
    ``start_controllers()``. The controller-manager, scheduler and node agent are the real ones.
    """

    def __init__(self, state_dir, template, config=None, s3=None, faults=None, webhook_modules=WEBHOOK_MODULES):
        from .faults import Faults
        self.template = template
        self.config = config or LabConfig(state_dir=os.path.abspath(str(state_dir)))
        self.s3 = s3
        self.faults = faults or Faults()
        self.webhook_modules = webhook_modules
        self.cluster = ControlPlane(seed_cluster_dir(template, self.config.path("cluster")))
        # Pods' exec runs the lab's runtime over this state directory, as in the lab.
        self.cluster.exec_command = node_exec.command(self.config.state_dir, self.cluster.kubeconfig_for("longhorn"))
        self.admin = self.store = self.ctx = self.admission = self.manager = None

    def start(self):
        self.cluster.start()
        self.admin = ApiClient.from_kubeconfig(self.cluster.kubeconfig)
        self.store = ApiClient.from_kubeconfig(self.cluster.kubeconfig_for("longhorn"),
                                               user_agent="longhorn-manager/%s" % self.config.longhorn_version)
        self.ctx = LabContext(config=self.config, store=self.store, s3=self.s3, faults=self.faults)
        chain = AdmissionChain()
        for name in self.webhook_modules:
            __import__(name, fromlist=["register"]).register(chain, self.ctx)
        self.admission = AdmissionServer(chain, self.store.registry, self.cluster.pki.path("webhook-serving.crt"),
                                         self.cluster.pki.path("webhook-serving.key")).start()
        self.admission.register(self.admin, self.cluster.pki.ca_cert)
        self.manager = ControllerManager(self.store)
        return self

    def start_controllers(self):
        """Informers for what the added controllers watch, synced before they start (as the lab does)."""
        watched = sorted({key for controller in self.manager.controllers() for key in controller.watches})
        self.store.start_informers(watched)
        if not self.store.wait_synced(timeout=60):
            raise RuntimeError("informers did not sync within 60 s")
        self.manager.start()
        return self

    def wipe(self):
        """The lab's wipe: a fresh copy of the template's datastore (Longhorn installed), node data gone."""
        self.store.stop()
        self.cluster.wipe()
        shutil.copytree(os.path.join(self.template, "cluster", "db"), self.cluster.path("db"))
        for sub in ("volumes", "snapshots", "pods"):
            shutil.rmtree(self.config.path(sub), ignore_errors=True)
        self.cluster.start()
        self.store.registry.refresh()
        self.admission.register(self.admin, self.cluster.pki.ca_cert)
        watched = sorted({key for controller in self.manager.controllers() for key in controller.watches})
        self.store.start_informers(watched)
        self.store.wait_synced(timeout=60)
        self.manager.resync()

    def stop(self):
        if self.manager is not None:
            self.manager.stop()
        if self.admission is not None:
            self.admission.stop()
        if self.store is not None:
            self.store.stop()
        self.cluster.stop()


def _seeded_clusters(root, lab_template):
    started = []

    def _start(s3=None, **config):
        state_dir = os.path.join(str(root), "cluster-%d" % len(started))
        # Only the options that shape what Longhorn installs pick the template (each costs ~20 s once).
        shaping = {k: config[k] for k in ("longhorn_version", "legacy_backup_target_settings") if k in config}
        running = SeededCluster(state_dir, lab_template(**shaping), config=LabConfig(state_dir=state_dir, **config), s3=s3)
        started.append(running)
        return running.start()

    return _start, started


@pytest.fixture
def seeded_cluster(tmp_path, lab_template):
    """``seeded_cluster(s3=None, **config)``: a started SeededCluster per call, stopped after the test."""
    start, started = _seeded_clusters(tmp_path, lab_template)
    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def module_seeded_cluster(tmp_path_factory, lab_template):
    """As ``seeded_cluster``, stopped after the module: for tests that share one cluster."""
    start, started = _seeded_clusters(tmp_path_factory.mktemp("seeded"), lab_template)
    yield start
    for running in started:
        running.stop()
