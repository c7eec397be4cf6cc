# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's PV controller binds, releases and protects volumes as kube-controller-manager does."""

from __future__ import annotations

import pytest

from tests.lab.controllers import pv as pvlib
from tests.lab import api_errors as errors

from .k8s_env import LONGHORN_STORAGE_CLASS, KubeEnv, longhorn_volume, pvc, static_pv


@pytest.fixture
def env(tmp_path):
    running = KubeEnv(tmp_path / "state").start()
    yield running
    running.stop()


def _bound(env, claim, volume):
    return env.phase("persistentvolumeclaims", "default", claim) == "Bound" and env.phase("persistentvolumes", "", volume) == "Bound"


def test_quantities_parse_and_format_like_resource_quantity():
    assert pvlib.quantity_value("1Gi") == 1024 ** 3
    assert pvlib.quantity_value("1G") == 10 ** 9
    assert pvlib.quantity_value("1.5Gi") == 1536 * 1024 ** 2
    assert pvlib.quantity_value("100m") == 1          # Value() rounds up
    assert pvlib.quantity_value("2e3") == 2000
    assert pvlib.format_binary(1024 ** 3) == "1Gi"
    assert pvlib.format_binary(1536 * 1024 ** 2) == "1536Mi"
    assert pvlib.format_binary(1000341504) == "954Mi"
    assert pvlib.format_binary(1536 * 1024) == "1536Ki"
    assert pvlib.format_binary(1000) == "1000"
    with pytest.raises(ValueError):
        pvlib.parse_quantity("one gig")


def test_new_pv_gets_defaults_finalizer_and_goes_available(env):
    created = env.store.create("persistentvolumes", static_pv("pv-a"))
    assert created["status"]["phase"] == "Pending"
    assert created["metadata"]["finalizers"] == [pvlib.PV_PROTECTION_FINALIZER]
    env.wait_for(lambda: env.phase("persistentvolumes", "", "pv-a") == "Available", what="PV Available")
    assert env.get("persistentvolumes", "", "pv-a")["status"]["lastPhaseTransitionTime"]


def test_claim_with_volume_name_binds_to_available_pv(env):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="binding")
    env.settle()
    volume = env.get("persistentvolumes", "", "pv-a")
    claim = env.get("persistentvolumeclaims", "default", "data")
    ref = volume["spec"]["claimRef"]
    assert ref["kind"] == "PersistentVolumeClaim" and ref["apiVersion"] == "v1"
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("default", "data", claim["metadata"]["uid"])
    assert ref["resourceVersion"]
    # The controller chose the claimRef (bound-by-controller on the PV) but not the volumeName.
    assert volume["metadata"]["annotations"][pvlib.ANN_BOUND_BY_CONTROLLER] == "yes"
    assert claim["metadata"]["annotations"] == {pvlib.ANN_BIND_COMPLETED: "yes"}
    assert claim["status"]["capacity"] == {"storage": "1Gi"}
    assert claim["status"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["metadata"]["finalizers"] == [pvlib.PVC_PROTECTION_FINALIZER]


def test_pv_pre_bound_by_claim_ref_binds_the_named_claim(env):
    env.store.create("persistentvolumes", static_pv("pv-a", claim_ref={"namespace": "default", "name": "data"}))
    env.store.create("persistentvolumes", static_pv("pv-b"))
    env.wait_for(lambda: env.phase("persistentvolumes", "", "pv-a") == "Available", what="pre-bound PV Available")
    env.store.create("persistentvolumeclaims", pvc("data"))
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="binding")
    env.settle()
    claim = env.get("persistentvolumeclaims", "default", "data")
    volume = env.get("persistentvolumes", "", "pv-a")
    assert claim["spec"]["volumeName"] == "pv-a"
    assert claim["metadata"]["annotations"][pvlib.ANN_BOUND_BY_CONTROLLER] == "yes"
    assert pvlib.ANN_BOUND_BY_CONTROLLER not in (volume["metadata"].get("annotations") or {})
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert env.phase("persistentvolumes", "", "pv-b") == "Available"


def test_claim_created_before_its_pv_binds_when_the_pv_appears(env):
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-late"))
    env.settle()
    assert env.phase("persistentvolumeclaims", "default", "data") == "Pending"
    env.store.create("persistentvolumes", static_pv("pv-late"))
    env.wait_for(lambda: _bound(env, "data", "pv-late"), timeout=3.0, what="binding after the PV appeared")


@pytest.mark.parametrize("claim, why", [
    (pvc("data", size="2Gi", volume_name="pv-a"), "too small"),
    (pvc("data", storage_class="other", volume_name="pv-a"), "class"),
    (pvc("data", access_modes=("ReadWriteMany",), volume_name="pv-a"), "access mode"),
])
def test_mismatching_claim_stays_pending(env, claim, why):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", claim)
    env.settle()
    assert env.phase("persistentvolumeclaims", "default", "data") == "Pending", why
    assert env.phase("persistentvolumes", "", "pv-a") == "Available", why
    assert "claimRef" not in env.get("persistentvolumes", "", "pv-a")["spec"]


def test_claim_without_volume_name_gets_the_smallest_fitting_pv(env):
    for name, size in (("pv-1g", "1Gi"), ("pv-5g", "5Gi"), ("pv-2g", "2Gi"), ("pv-3g", "3Gi")):
        env.store.create("persistentvolumes", static_pv(name, size=size))
    env.store.create("persistentvolumes", static_pv("pv-other-class", size="2Gi", storage_class="slow"))
    env.store.create("persistentvolumeclaims", pvc("data", size="1536Mi"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="binding")
    assert env.get("persistentvolumeclaims", "default", "data")["spec"]["volumeName"] == "pv-2g"
    env.settle()
    assert {n: env.phase("persistentvolumes", "", n) for n in ("pv-1g", "pv-5g", "pv-3g", "pv-other-class")} == {
        "pv-1g": "Available", "pv-5g": "Available", "pv-3g": "Available", "pv-other-class": "Available"}


def test_claim_selector_limits_the_candidates(env):
    env.store.create("persistentvolumes", static_pv("pv-plain"))
    env.store.create("persistentvolumes", static_pv("pv-app", size="2Gi", labels={"app": "db"}))
    claim = pvc("data")
    claim["spec"]["selector"] = {"matchLabels": {"app": "db"}}
    env.store.create("persistentvolumeclaims", claim)
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="binding")
    assert env.get("persistentvolumeclaims", "default", "data")["spec"]["volumeName"] == "pv-app"


def test_deleting_the_claim_releases_a_retained_pv_and_keeps_the_claim_ref(env):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="binding")
    old_uid = env.get("persistentvolumeclaims", "default", "data")["metadata"]["uid"]
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.get("persistentvolumeclaims", "default", "data") is None, what="claim gone (no pod uses it)")
    env.wait_for(lambda: env.phase("persistentvolumes", "", "pv-a") == "Released", what="Released")
    env.settle()
    volume = env.get("persistentvolumes", "", "pv-a")
    assert volume["spec"]["claimRef"]["uid"] == old_uid
    # A new claim of the same name does not get the released volume back.
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.settle()
    assert env.phase("persistentvolumeclaims", "default", "data") == "Pending"
    assert env.phase("persistentvolumes", "", "pv-a") == "Released"

    # Clearing the claimRef, as an admin does to reuse a Retained volume, makes it Available and it binds.
    def _clear(obj):
        obj["spec"].pop("claimRef")
    env.store.modify("persistentvolumes", "", "pv-a", _clear)
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="rebinding")


def test_in_tree_volume_with_delete_policy_fails_to_reclaim(env):
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "manual", "hostPath": {"path": "/nonexistent-lab-path"}}
    volume = {"metadata": {"name": "pv-host"}, "spec": spec}
    env.store.create("persistentvolumes", volume)
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="manual", volume_name="pv-host"))
    env.wait_for(lambda: _bound(env, "data", "pv-host"), what="binding")
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.phase("persistentvolumes", "", "pv-host") == "Failed", what="Failed")
    assert "no deletable volume plugin matched" in env.get("persistentvolumes", "", "pv-host")["status"]["message"]


def test_bound_pv_is_protected_until_released(env):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="binding")
    env.store.delete("persistentvolumes", "", "pv-a")
    env.settle()
    volume = env.get("persistentvolumes", "", "pv-a")
    assert volume["metadata"]["deletionTimestamp"] and volume["status"]["phase"] == "Bound"
    assert env.phase("persistentvolumeclaims", "default", "data") == "Bound"
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.get("persistentvolumes", "", "pv-a") is None, what="PV gone after release")


def test_claim_whose_volume_vanished_is_lost(env):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.wait_for(lambda: _bound(env, "data", "pv-a"), what="binding")

    def _no_finalizers(obj):
        obj["metadata"]["finalizers"] = []
    env.store.modify("persistentvolumes", "", "pv-a", _no_finalizers)
    env.store.delete("persistentvolumes", "", "pv-a")
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Lost", what="Lost")
    claim = env.get("persistentvolumeclaims", "default", "data")
    assert "capacity" not in claim["status"] and "accessModes" not in claim["status"]


def test_claim_in_use_by_a_pod_waits_for_the_pod(env):
    env.store.create(env.store.registry.by_plural("volumes", "longhorn.io"), longhorn_volume("pv-a"))
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="pv-a"))
    env.store.create("pods", {"metadata": {"name": "app", "namespace": "default"}, "spec": {
        "containers": [{"name": "app", "image": "busybox:1.36", "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})
    env.wait_for(lambda: env.phase("pods", "default", "app") == "Running", what="pod Running")
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.settle()
    claim = env.get("persistentvolumeclaims", "default", "data")
    assert claim is not None and claim["metadata"]["deletionTimestamp"], "pvc-protection keeps a claim in use"
    env.store.delete("pods", "default", "app")
    env.wait_for(lambda: env.get("persistentvolumeclaims", "default", "data") is None, what="claim gone after the pod")
    env.wait_for(lambda: env.phase("persistentvolumes", "", "pv-a") == "Released", what="Released")


def test_default_storage_class_is_assigned_retroactively(tmp_path):
    env = KubeEnv(tmp_path / "state", storage_class=False).start()
    try:
        env.store.create("persistentvolumeclaims", pvc("data", storage_class=None))
        env.store.create("persistentvolumeclaims", pvc("static", storage_class=""))
        env.settle()
        assert "storageClassName" not in env.get("persistentvolumeclaims", "default", "data")["spec"]
        env.store.create("storageclasses", LONGHORN_STORAGE_CLASS)
        env.wait_for(lambda: env.get("persistentvolumeclaims", "default", "data")["spec"].get("storageClassName") == "longhorn",
                     what="default class assigned")
        # An explicit "" means "no class" and stays so.
        env.settle()
        assert env.get("persistentvolumeclaims", "default", "static")["spec"]["storageClassName"] == ""
    finally:
        env.stop()


def test_claim_bound_to_another_claims_volume_stays_pending(env):
    env.store.create("persistentvolumes", static_pv("pv-a"))
    env.store.create("persistentvolumeclaims", pvc("first", volume_name="pv-a"))
    env.wait_for(lambda: _bound(env, "first", "pv-a"), what="first binding")
    env.store.create("persistentvolumeclaims", pvc("second", volume_name="pv-a"))
    env.settle()
    assert env.phase("persistentvolumeclaims", "default", "second") == "Pending"
    assert env.get("persistentvolumes", "", "pv-a")["spec"]["claimRef"]["name"] == "first"


def test_admission_runs_on_dry_run_creates_too(env):
    dry = env.store.create("persistentvolumes", static_pv("pv-dry"), dry_run=True)
    assert dry["metadata"]["finalizers"] == [pvlib.PV_PROTECTION_FINALIZER]
    with pytest.raises(errors.NotFound):
        env.store.get("persistentvolumes", "", "pv-dry")
