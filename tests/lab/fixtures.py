# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin: fixtures that give tests a running lab (or a real cluster).

``lab``          a fresh lab per test (function scope)
``lab_session``  one lab shared by a whole session (tests must not depend on its state)
``lab_factory``  start labs with options, e.g. ``lab_factory(longhorn_version="v1.7.2")``
``seeded_cluster`` a lab from the template whose test picks the controllers that run
``target``       a real cluster + MinIO when LONGHORN_DR_TARGET_* is set, else ``lab_session``
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from .lab import Lab, prepare_template

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
    with a copy of that datastore starts in about 4 s. Built once per run for each set of the
    options that shape it (see lab.TEMPLATE_SHAPING), whichever xdist worker asks first.
    """
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker's base is a directory of the run's: the workers share the templates.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "lab-templates"

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


def _seeded_clusters(root, lab_template, s3):
    started = []

    def _start(**config):
        running = Lab(os.path.join(str(root), "cluster-%d" % len(started)), template=lab_template(**config),
                      s3=s3, controllers=(), **config)
        started.append(running)
        return running.start()

    return _start, started


@pytest.fixture(scope="session")
def lab_s3_server():
    """One S3 server for the seeded labs of a session (each test uses a prefix of its own)."""
    from .s3 import S3Server
    with S3Server() as server:
        yield server


@pytest.fixture
def seeded_cluster(tmp_path, lab_template, lab_s3_server):
    """``seeded_cluster(**config)``: a started ``Lab(template=..., controllers=())`` per call, stopped
    after the test: a real cluster with Longhorn installed and its webhooks served, but none of the lab's
    controllers (a test adds the ones it exercises and calls ``start_controllers()``)."""
    start, started = _seeded_clusters(tmp_path, lab_template, lab_s3_server)
    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def module_seeded_cluster(tmp_path_factory, lab_template, lab_s3_server):
    """As ``seeded_cluster``, stopped after the module: for tests that share one cluster."""
    start, started = _seeded_clusters(tmp_path_factory.mktemp("seeded"), lab_template, lab_s3_server)
    yield start
    for running in started:
        running.stop()
