# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fresh lab has Longhorn installed as the chart and longhorn-manager leave it (ref §1.1, §1.2, §6).

The clusters are real control planes seeded from the lab template, whose datastore ``install_longhorn``
filled on an empty cluster; the setting webhook is served to the API server by the lab's admission server.
"""

from __future__ import annotations

import hashlib

import pytest
import yaml

from tests.lab import api_errors as errors
from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.longhorn.install import install_longhorn

NS = LONGHORN_NAMESPACE
KINDS = ("BackupTarget", "Backup", "BackupVolume", "Volume", "Snapshot", "SystemBackup", "SystemRestore", "RecurringJob",
         "Setting", "EngineImage", "Node", "Engine", "Replica", "VolumeAttachment")


def fresh(start, **config):
    cluster = start(**config)       # a lab start installs Longhorn again over the template's
    return cluster.store, cluster.ctx


def lh(store, plural, name):
    return store.try_get(store.registry.by_plural(plural, "longhorn.io"), NS, name)


@pytest.fixture(scope="module")
def installed(module_seeded_cluster):
    """One cluster for the module: the tests read it, and the one that writes puts things back."""
    return fresh(module_seeded_cluster)


def test_namespace_and_crds_are_served(installed):
    store, _ctx = installed
    assert store.try_get("namespaces", "", NS) is not None
    crds = {c["spec"]["names"]["kind"]: c for c in store.list("customresourcedefinitions")[0]}
    assert set(KINDS) <= set(crds)
    for kind in KINDS:
        rtype = store.registry.by_kind("longhorn.io/v1beta2", kind)
        assert rtype is not None and rtype.namespaced, kind
    assert store.registry.by_plural("lhva", "longhorn.io").kind == "VolumeAttachment"


def test_default_settings(installed):
    store, _ctx = installed
    assert lh(store, "settings", "current-longhorn-version")["value"] == "v1.10.2"
    assert lh(store, "settings", "backup-compression-method")["value"] == "lz4"
    assert lh(store, "settings", "default-backup-block-size")["value"] == "2"
    assert lh(store, "settings", "default-longhorn-static-storage-class")["value"] == "longhorn-static"
    assert lh(store, "settings", "recurring-job-max-retention")["value"] == "100"
    assert lh(store, "settings", "allow-volume-creation-with-degraded-availability")["value"] == "true"
    # v1.10 data-engine-specific settings hold a JSON map per engine.
    assert lh(store, "settings", "default-replica-count")["value"] == '{"v1":"3","v2":"3"}'
    assert lh(store, "settings", "backup-compression-method")["status"] == {"applied": True}
    # ref §1.2: no backup-target Settings from v1.8 on.
    for name in ("backup-target", "backup-target-credential-secret", "backupstore-poll-interval"):
        assert lh(store, "settings", name) is None


def test_legacy_version_has_backup_target_settings(seeded_cluster):
    store, _ctx = fresh(seeded_cluster, longhorn_version="v1.7.2")
    assert lh(store, "settings", "backup-target")["value"] == ""
    assert lh(store, "settings", "backup-target-credential-secret")["value"] == ""
    assert lh(store, "settings", "backupstore-poll-interval")["value"] == "300"
    assert lh(store, "settings", "current-longhorn-version")["value"] == "v1.7.2"
    assert lh(store, "settings", "default-replica-count")["value"] == "3"
    assert lh(store, "settings", "default-backup-block-size") is None


def test_storage_class_and_configmaps(installed):
    store, _ctx = installed
    sc = store.get("storageclasses", "", "longhorn")
    assert sc["provisioner"] == "driver.longhorn.io"
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["volumeBindingMode"] == "Immediate"
    assert sc["allowVolumeExpansion"] is True
    assert sc["parameters"]["numberOfReplicas"] == "3"
    assert sc["parameters"]["staleReplicaTimeout"] == "30"
    assert sc["parameters"]["dataEngine"] == "v1"
    resource = store.get("configmaps", NS, "longhorn-default-resource")
    # ref §1.2: the chart writes no backup-target keys unless defaultBackupStore.* is set.
    assert resource["data"] == {"default-resource.yaml": ""}
    setting = store.get("configmaps", NS, "longhorn-default-setting")
    parsed = yaml.safe_load(setting["data"]["default-setting.yaml"])
    assert parsed["priority-class"] == "longhorn-critical"
    assert "backup-target" not in parsed


def test_nodes_engine_image_and_service(installed):
    store, _ctx = installed
    node = store.get("nodes", "", "lab-node-1")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    lh_node = lh(store, "nodes", "lab-node-1")
    assert lh_node["spec"]["allowScheduling"] is True
    assert "longhorn.io" in lh_node["metadata"]["finalizers"]
    assert {c["type"]: c["status"] for c in lh_node["status"]["conditions"]}["Ready"] == "True"
    image = "longhornio/longhorn-engine:v1.10.2"
    ei = lh(store, "engineimages", "ei-" + hashlib.sha512(image.encode()).hexdigest()[:8])
    assert ei["spec"]["image"] == image
    assert ei["status"]["state"] == "deployed"
    service = store.get("services", NS, "longhorn-backend")
    assert service["spec"]["ports"][0]["port"] == 9500
    assert service["spec"]["ports"][0]["name"] == "manager"


def test_default_backup_target_is_empty(installed):
    store, _ctx = installed
    target = lh(store, "backuptargets", "default")
    assert target["spec"]["backupTargetURL"] == ""
    assert target["spec"]["credentialSecret"] == ""
    assert target["spec"]["pollInterval"] == "5m0s"
    assert target["status"]["available"] is False
    condition = target["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["message"]) == ("Unavailable", "True", "backup target URL is empty")
    assert "longhorn.io" in target["metadata"]["finalizers"]


def _longhorn_counts(store):
    # Longhorn's own objects: the cluster's (events, leases) come and go on their own.
    return {k: v for k, v in store.object_counts().items() if k.startswith("longhorn.io/")}


def test_install_is_idempotent(installed):
    store, ctx = installed
    before = _longhorn_counts(store)
    assert before
    setting_rv = lh(store, "settings", "backup-compression-method")["metadata"]["resourceVersion"]
    target_rv = lh(store, "backuptargets", "default")["metadata"]["resourceVersion"]
    install_longhorn(ctx)
    assert _longhorn_counts(store) == before
    assert lh(store, "settings", "backup-compression-method")["metadata"]["resourceVersion"] == setting_rv
    assert lh(store, "backuptargets", "default")["metadata"]["resourceVersion"] == target_rv


def test_install_puts_back_what_was_deleted(seeded_cluster):
    """After a wipe the lab installs again: objects that are gone come back as they were."""
    store, ctx = fresh(seeded_cluster)
    before = _longhorn_counts(store)
    store.delete("storageclasses", "", "longhorn")
    store.delete("configmaps", NS, "longhorn-default-resource")
    store.delete("services", NS, "longhorn-backend")
    install_longhorn(ctx)
    assert _longhorn_counts(store) == before
    assert store.get("storageclasses", "", "longhorn")["provisioner"] == "driver.longhorn.io"
    assert store.get("configmaps", NS, "longhorn-default-resource")["data"] == {"default-resource.yaml": ""}
    assert store.get("services", NS, "longhorn-backend")["spec"]["ports"][0]["port"] == 9500


def test_installed_settings_pass_the_setting_webhook(installed):
    store, _ctx = installed
    rtype = store.registry.by_plural("settings", "longhorn.io")

    def _value(value):
        return lambda obj: obj.update(value=value)
    try:
        assert store.modify(rtype, NS, "backup-compression-method", _value("gzip"))["value"] == "gzip"
        with pytest.raises(errors.ApiError) as raised:
            store.delete(rtype, NS, "backup-compression-method")
        assert "can be modified but not deleted" in raised.value.message
    finally:
        store.modify(rtype, NS, "backup-compression-method", _value("lz4"))
