# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fresh lab has Longhorn installed as the chart and longhorn-manager leave it (ref §1.1, §1.2, §6)."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from tests.lab.context import LONGHORN_NAMESPACE, LabConfig, LabContext
from tests.lab.kube import builtin_validation, errors, schema
from tests.lab.kube.resources import Registry
from tests.lab.kube.store import Store
from tests.lab.longhorn import webhooks
from tests.lab.longhorn.install import install_longhorn

NS = LONGHORN_NAMESPACE
KINDS = ("BackupTarget", "Backup", "BackupVolume", "Volume", "Snapshot", "SystemBackup", "SystemRestore", "RecurringJob",
         "Setting", "EngineImage", "Node", "Engine", "Replica", "VolumeAttachment")


def fresh(tmp_path, **config):
    store = Store(Registry())
    ctx = LabContext(config=LabConfig(state_dir=str(tmp_path), **config), store=store)
    store.add_mutator(schema.schema_mutator)
    store.add_validator(schema.schema_validator)
    builtin_validation.register(store)
    webhooks.register(store, ctx)
    install_longhorn(ctx)
    return store, ctx


def lh(store, plural, name):
    return store.try_get(store.registry.by_plural(plural, "longhorn.io"), NS, name)


@pytest.fixture
def installed(tmp_path):
    return fresh(tmp_path)


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


def test_legacy_version_has_backup_target_settings(tmp_path):
    store, _ctx = fresh(tmp_path, longhorn_version="v1.7.2")
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


def test_install_is_idempotent_and_survives_a_wipe(installed):
    store, ctx = installed
    before = dict(store.object_counts())
    setting_rv = lh(store, "settings", "backup-compression-method")["metadata"]["resourceVersion"]
    install_longhorn(ctx)
    assert store.object_counts() == before
    assert lh(store, "settings", "backup-compression-method")["metadata"]["resourceVersion"] == setting_rv
    store.wipe()
    assert store.registry.by_plural("backuptargets", "longhorn.io") is None
    install_longhorn(ctx)
    assert store.object_counts() == before
    assert lh(store, "backuptargets", "default")["spec"]["pollInterval"] == "5m0s"


def test_installed_settings_pass_the_setting_webhook(installed):
    store, _ctx = installed
    rtype = store.registry.by_plural("settings", "longhorn.io")

    def _value(obj):
        obj["value"] = "gzip"
    assert store.modify(rtype, NS, "backup-compression-method", _value)["value"] == "gzip"
    with pytest.raises(errors.ApiError) as raised:
        store.delete(rtype, NS, "backup-compression-method")
    assert "can be modified but not deleted" in raised.value.message
