# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission through the real API server: it calls the lab's webhook server over HTTPS."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.lab.admission import AdmissionChain, AdmissionServer, _json_patch
from tests.lab.control_plane.cluster import ControlPlane
from tests.lab.lab import seed_cluster_dir
from tests.lab import api_errors as errors

GADGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.longhorn.io"},
    "spec": {"group": "longhorn.io", "scope": "Namespaced",
             "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
             "versions": [{"name": "v1beta2", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


class _Registry:
    def by_plural(self, plural, group=None):
        if (group, plural) == ("longhorn.io", "gadgets"):
            return SimpleNamespace(group="longhorn.io", plural="gadgets", key=("longhorn.io", "gadgets"))
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, lab_template):
    # Seeded from the lab template (bootstrapped in seconds); its Longhorn webhook configurations are replaced below.
    plane = ControlPlane(seed_cluster_dir(lab_template(), tmp_path_factory.mktemp("admission"))).start()
    seen = []
    chain = AdmissionChain()

    def label_it(request):
        seen.append((request.operation, request.user, request.dry_run))
        request.obj.setdefault("metadata", {}).setdefault("labels", {})["mutated-by"] = "lab"

    def refuse_bad(request):
        if request.operation == "DELETE" and request.old["metadata"]["name"] == "kept":
            raise errors.AdmissionDenied("validator.longhorn.io", "deleting kept is not allowed")
        if request.obj and request.obj.get("spec", {}).get("size") == "bad":
            raise errors.AdmissionDenied("validator.longhorn.io", "size bad is not valid", code=422)

    chain.add_mutator(label_it)
    chain.add_validator(refuse_bad)
    server = AdmissionServer(chain, _Registry(), plane.pki.path("webhook-serving.crt"), plane.pki.path("webhook-serving.key")).start()
    with open(plane.pki.ca_cert, encoding="utf-8") as handle:
        mutating, validating = server.configurations(handle.read())
    assert plane.request("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", method="POST", body=GADGETS)[0] == 201
    for plural, body in (("mutatingwebhookconfigurations", mutating), ("validatingwebhookconfigurations", validating)):
        path = "/apis/admissionregistration.k8s.io/v1/" + plural
        assert plane.request(path + "/" + body["metadata"]["name"], method="DELETE")[0] in (200, 404)
        assert plane.request(path, method="POST", body=body)[0] == 201
    deadline = time.monotonic() + 30
    while plane.request("/apis/longhorn.io/v1beta2")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    yield SimpleNamespace(plane=plane, seen=seen)
    server.stop()
    plane.stop()


def _gadget(name, size="1"):
    return {"apiVersion": "longhorn.io/v1beta2", "kind": "Gadget", "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}}


def _create(plane, body, dry_run=False):
    # Webhook configurations take effect once the API server's informer has them.
    path = "/apis/longhorn.io/v1beta2/namespaces/default/gadgets" + ("?dryRun=All" if dry_run else "")
    deadline = time.monotonic() + 20
    while True:
        status, answer = plane.request(path, method="POST", body=body)
        labelled = status != 201 or (answer["metadata"].get("labels") or {}).get("mutated-by") == "lab"
        if labelled or time.monotonic() > deadline:
            return status, answer
        plane.request(path + "/" + body["metadata"]["name"], method="DELETE")
        time.sleep(0.2)


def test_the_mutating_webhook_changes_what_is_stored(cluster):
    status, created = _create(cluster.plane, _gadget("one"))
    assert status == 201
    assert created["metadata"]["labels"] == {"mutated-by": "lab"}
    assert ("CREATE", "lab-admin", False) in cluster.seen


def test_a_validating_refusal_reaches_the_client_as_the_api_server_words_it(cluster):
    status, answer = _create(cluster.plane, _gadget("two", size="bad"))
    assert status == 422
    assert answer["message"] == 'admission webhook "validator.longhorn.io" denied the request: size bad is not valid'
    assert cluster.plane.request("/apis/longhorn.io/v1beta2/namespaces/default/gadgets/two")[0] == 404


def test_deletes_are_validated_and_dry_runs_reach_the_webhook_as_dry_runs(cluster):
    assert _create(cluster.plane, _gadget("kept"))[0] == 201
    status, answer = cluster.plane.request("/apis/longhorn.io/v1beta2/namespaces/default/gadgets/kept", method="DELETE")
    assert status == 422, answer
    assert "deleting kept is not allowed" in answer["message"]
    status, _answer = _create(cluster.plane, _gadget("dry"), dry_run=True)
    assert status == 201
    assert ("CREATE", "lab-admin", True) in cluster.seen
    assert cluster.plane.request("/apis/longhorn.io/v1beta2/namespaces/default/gadgets/dry")[0] == 404


def test_the_patch_touches_only_what_the_mutator_changed():
    before = {"metadata": {"name": "a"}, "spec": {"x": 1}, "gone": True}
    after = {"metadata": {"name": "a", "labels": {"l": "v"}}, "spec": {"x": 1}, "new~/key": 2}
    assert _json_patch(before, after) == [
        {"op": "remove", "path": "/gone"},
        {"op": "replace", "path": "/metadata", "value": {"name": "a", "labels": {"l": "v"}}},
        {"op": "add", "path": "/new~0~1key", "value": 2},
    ]
