# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's real control plane: upstream kine, kube-apiserver, kube-controller-manager and kube-scheduler.

These check that the programs are the upstream ones at the pinned release, that the cluster is
secured as a k3s server is (TLS, RBAC, no anonymous access, service-account tokens), that its own
controllers run, and that a restart keeps the datastore while a wipe drops it.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.lab.control_plane import build
from tests.lab.control_plane.cluster import ControlPlane, ControlPlaneError


def _wait(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    plane = ControlPlane(str(tmp_path_factory.mktemp("control-plane"))).start()
    yield plane
    plane.stop()


def test_the_servers_are_the_pinned_upstream_release(control_plane):
    status, version = control_plane.request("/version")
    assert status == 200
    assert version["gitVersion"] == build.kubernetes_version()
    assert version["gitTreeState"] == "clean"


def test_anonymous_requests_are_refused(control_plane):
    import ssl
    import urllib.error
    import urllib.request
    context = ssl.create_default_context(cafile=control_plane.pki.ca_cert)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(control_plane.api_server + "/api/v1/namespaces", context=context, timeout=5)
    assert refused.value.code == 401


def test_rbac_refuses_the_restricted_user_until_a_binding_grants_it(control_plane):
    status, body = control_plane.request("/api/v1/namespaces/default/configmaps", identity="restricted")
    assert status == 403
    assert 'User "lab-restricted" cannot list resource "configmaps"' in body["message"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "read-configmaps", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "read-configmaps", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
               "subjects": [{"kind": "User", "name": "lab-restricted", "apiGroup": "rbac.authorization.k8s.io"}]}
    assert control_plane.request("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", method="POST", body=role)[0] == 201
    assert control_plane.request("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", method="POST", body=binding)[0] == 201
    # RBAC caches are fed by informers: the grant takes effect within moments.
    _wait(lambda: control_plane.request("/api/v1/namespaces/default/configmaps", identity="restricted")[0] == 200,
          what="the RoleBinding to take effect")
    assert control_plane.request("/api/v1/namespaces/default/secrets", identity="restricted")[0] == 403


def test_access_reviews_answer_for_the_restricted_user(control_plane):
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": "lab-restricted", "resourceAttributes": {"verb": "delete", "resource": "persistentvolumes"}}}
    status, body = control_plane.request("/apis/authorization.k8s.io/v1/subjectaccessreviews", method="POST", body=review)
    assert status == 201
    assert body["status"]["allowed"] is False


def test_the_controller_manager_runs_the_service_account_and_root_ca_controllers(control_plane):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cp-sa-check"}}
    assert control_plane.request("/api/v1/namespaces", method="POST", body=namespace)[0] == 201
    accounts = _wait(lambda: control_plane.request("/api/v1/namespaces/cp-sa-check/serviceaccounts")[1].get("items"),
                     what="the default ServiceAccount")
    assert [a["metadata"]["name"] for a in accounts] == ["default"]
    _wait(lambda: control_plane.request("/api/v1/namespaces/cp-sa-check/configmaps/kube-root-ca.crt")[0] == 200,
          what="kube-root-ca.crt")
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": []}}
    status, token = control_plane.request("/api/v1/namespaces/cp-sa-check/serviceaccounts/default/token", method="POST", body=request)
    assert status == 201
    assert re.match(r"^[\w-]+\.[\w-]+\.[\w-]+$", token["status"]["token"])


def test_the_deployment_controller_creates_a_replica_set(control_plane):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    assert control_plane.request("/apis/apps/v1/namespaces/default/deployments", method="POST", body=deployment)[0] == 201
    sets = _wait(lambda: control_plane.request("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb")[1].get("items"),
                 what="the ReplicaSet")
    assert sets[0]["metadata"]["ownerReferences"][0]["name"] == "web"


def test_a_restart_keeps_the_datastore_and_a_wipe_drops_it(tmp_path):
    plane = ControlPlane(str(tmp_path / "cp")).start()
    try:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "default"}}
        assert plane.request("/api/v1/namespaces/default/configmaps", method="POST", body=body)[0] == 201
        plane.stop()
        started = time.monotonic()
        plane.start()
        assert time.monotonic() - started < 15, "a warm start must take at most 15 s"
        assert plane.request("/api/v1/namespaces/default/configmaps/kept")[0] == 200
        plane.wipe()
        plane.start()
        assert plane.request("/api/v1/namespaces/default/configmaps/kept")[0] == 404
        assert os.path.exists(plane.pki.ca_cert), "the TLS material survives a wipe, as k3s keeps server/tls"
    finally:
        plane.stop()


def test_a_component_that_dies_at_start_is_reported_with_its_log(tmp_path, monkeypatch):
    plane = ControlPlane(str(tmp_path / "cp"))
    real = build.binary

    def broken(name):
        return "/bin/false" if name == "kube-apiserver" else real(name)

    monkeypatch.setattr(build, "binary", broken)
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited with 1"):
        plane.start(timeout=20)
    assert plane._processes == {}  # pylint: disable=protected-access


def test_a_missing_binary_names_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_COMPONENTS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(build.BuildError, match="kube-apiserver is not built .*run: make lab-components"):
        build.binary("kube-apiserver")


def test_the_cache_key_follows_the_pins(tmp_path, monkeypatch):
    components = tmp_path / "components"
    components.mkdir()
    for name in ("go.mod", "go.sum", "tools.go"):
        (components / name).write_bytes(open(os.path.join(build.COMPONENTS_DIR, name), "rb").read())
    monkeypatch.setattr(build, "COMPONENTS_DIR", str(components))
    before = build.cache_key(str(components))
    assert before.startswith("kubernetes-%s-" % build.kubernetes_version())
    (components / "go.sum").write_text((components / "go.sum").read_text() + "\n")
    assert build.cache_key(str(components)) != before
