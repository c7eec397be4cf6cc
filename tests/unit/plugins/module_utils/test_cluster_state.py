# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _cluster_state: cleaning, selection, mapping, manifest, reuse decision, upload prefix."""

from __future__ import annotations

import datetime
import hashlib

import pytest
import yaml

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state as cs

UTC = datetime.timezone.utc
NOISE = {"managedFields": [{"manager": "kubectl"}], "resourceVersion": "42", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z",
         "generation": 3, "selfLink": "/api/x"}


def pvc(name, namespace="apps", volume_name=None, storage_class="longhorn", modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(modes), "storageClassName": storage_class, "resources": {"requests": {"storage": "64Mi"}}}
    if volume_name:
        spec["volumeName"] = volume_name
    return {"metadata": dict(NOISE, name=name, namespace=namespace,
                             annotations={"pv.kubernetes.io/bind-completed": "yes", "team": "a"}),
            "spec": spec, "status": {"phase": "Bound"}}


def pv(name, driver="driver.longhorn.io", claim=None, storage_class="longhorn", modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(modes), "storageClassName": storage_class, "csi": {"driver": driver, "volumeHandle": name},
            "capacity": {"storage": "64Mi"}}
    if claim:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": claim[0], "name": claim[1], "uid": "c-1", "resourceVersion": "7"}
    return {"metadata": dict(NOISE, name=name), "spec": spec, "status": {"phase": "Bound"}}


def volume(name, size="67108864", replicas=3, access="rwo", kstatus=None, last_backup=None, node="node-1"):
    status = {"state": "attached", "robustness": "healthy", "actualSize": 123, "isStandby": False}
    if kstatus:
        status["kubernetesStatus"] = dict(kstatus, workloadsStatus=[{"podName": "app-1"}], lastPodRefAt="")
    if last_backup:
        status["lastBackup"] = last_backup
        status["lastBackupAt"] = "2026-11-22T01:00:00Z"
    return {"metadata": dict(NOISE, name=name, namespace="longhorn-system"),
            "spec": {"size": size, "numberOfReplicas": replicas, "accessMode": access, "nodeID": node, "migrationNodeID": "",
                     "lastAttachedBy": "app"}, "status": status}


def backup(name, volume_name, state="Completed", created="2026-11-22T01:00:00Z"):
    return {"metadata": {"name": name, "labels": {"backup-volume": volume_name}},
            "status": {"state": state, "volumeName": volume_name, "backupCreatedAt": created, "snapshotCreatedAt": created,
                       "url": "s3://b@us-east-1/?backup=%s&volume=%s" % (name, volume_name)}}


def test_clean_metadata_drops_noise_keeps_meaning():
    cleaned = cs.clean_pvc(pvc("data", volume_name="pv-1"))
    assert cleaned["metadata"] == {"name": "data", "namespace": "apps", "annotations": {"team": "a"}}
    assert "status" not in cleaned and cleaned["spec"]["volumeName"] == "pv-1"
    obj = {"metadata": dict(NOISE, name="x", annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"}, labels={})}
    assert cs.clean_metadata(obj)["metadata"] == {"name": "x"}
    assert obj["metadata"]["uid"] == "u-1", "the input is not modified"


def test_clean_pv_keeps_claim_by_name_only():
    cleaned = cs.clean_pv(pv("pv-1", claim=("apps", "data")))
    assert cleaned["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "apps", "name": "data"}
    assert "status" not in cleaned


def test_clean_volume_keeps_what_a_restore_needs():
    cleaned = cs.clean_volume(volume("vol-1", kstatus={"namespace": "apps", "pvcName": "data", "pvName": "pv-1", "pvStatus": "Bound",
                                                       "lastPVCRefAt": ""}, last_backup="backup-1"))
    assert cleaned["spec"] == {"size": "67108864", "numberOfReplicas": 3, "accessMode": "rwo"}
    assert cleaned["status"] == {"isStandby": False, "lastBackup": "backup-1", "lastBackupAt": "2026-11-22T01:00:00Z",
                                 "kubernetesStatus": {"namespace": "apps", "pvcName": "data", "pvName": "pv-1", "pvStatus": "Bound"}}


def test_clean_backup_target_names_the_secret_and_drops_the_poll_stamp():
    target = {"metadata": dict(NOISE, name="default", namespace="longhorn-system"),
              "spec": {"backupTargetURL": "s3://b@us-east-1/", "credentialSecret": "minio", "pollInterval": "5m0s",
                       "syncRequestedAt": "2026-11-22T01:00:00Z"},
              "status": {"available": True, "lastSyncedAt": "2026-11-22T01:00:00Z"}}
    cleaned = cs.clean_backup_target(target)
    assert cleaned["spec"] == {"backupTargetURL": "s3://b@us-east-1/", "credentialSecret": "minio", "pollInterval": "5m0s"}
    assert "status" not in cleaned


def test_select_objects_longhorn_only():
    pvcs = [pvc("data", volume_name="pv-lh"), pvc("nfs", volume_name="pv-nfs", storage_class="nfs"), pvc("pending")]
    pvs = [pv("pv-lh", claim=("apps", "data"), storage_class="longhorn-static"), pv("pv-nfs", driver="nfs.csi.k8s.io", storage_class="nfs")]
    classes = [{"metadata": {"name": "longhorn"}, "provisioner": "driver.longhorn.io"},
               {"metadata": {"name": "longhorn-static"}, "provisioner": "driver.longhorn.io/static"},
               {"metadata": {"name": "nfs"}, "provisioner": "nfs.csi.k8s.io"}]
    bound, longhorn_pvs, selected = cs.select_objects(pvcs, pvs, classes)
    assert [p["metadata"]["name"] for p in bound] == ["data"]
    assert [p["metadata"]["name"] for p in longhorn_pvs] == ["pv-lh"]
    assert [c["metadata"]["name"] for c in selected] == ["longhorn", "longhorn-static"]


def test_dump_yaml_is_sorted_and_stable():
    items = [cs.clean_pvc(pvc("b", namespace="z")), cs.clean_pvc(pvc("a", namespace="z")), cs.clean_pvc(pvc("c", namespace="a"))]
    first = cs.dump_yaml(items, yaml.safe_dump)
    assert first == cs.dump_yaml(list(reversed(items)), yaml.safe_dump)
    document = yaml.safe_load(first)
    assert document["kind"] == "List" and [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in document["items"]] == [
        ("a", "c"), ("z", "a"), ("z", "b")]
    assert first.index("accessModes") < first.index("resources") < first.index("storageClassName")
    long_label = {"metadata": {"name": "x", "labels": {"KubernetesStatus": "{" + "a" * 300 + "}"}}}
    assert len(cs.dump_yaml([long_label], yaml.safe_dump).splitlines()) == 7, "long strings stay on one line"


@pytest.mark.parametrize("value, expected", [("67108864", 67108864), (1024, 1024), ("64Mi", 64 * 2 ** 20), ("1Gi", 2 ** 30),
                                             ("2G", 2 * 10 ** 9), ("", None), (None, None), ("lots", None)])
def test_parse_quantity_bytes(value, expected):
    assert cs.parse_quantity_bytes(value) == expected


def test_volume_mapping_follows_pv_and_pvc_and_picks_the_last_backup():
    gone = {"namespace": "old", "pvcName": "gone", "pvName": "pv-gone"}
    volumes = [volume("vol-a", last_backup="backup-a1"), volume("vol-b", access="rwx", replicas=2, kstatus=gone)]
    pvs = [pv("vol-a", claim=("apps", "data"), modes=("ReadWriteOnce",))]
    pvcs = [pvc("data", volume_name="vol-a")]
    backups = [backup("backup-a1", "vol-a", created="2026-11-22T01:00:00Z"),
               backup("backup-a2", "vol-a", created="2026-11-22T00:00:00Z"),
               backup("backup-b1", "vol-b", created="2026-11-21T00:00:00Z"),
               backup("backup-b2", "vol-b", created="2026-11-22T00:00:00Z"),
               backup("backup-b3", "vol-b", state="Error", created="2026-11-23T00:00:00Z")]
    a, b = cs.volume_mapping(volumes, pvs, pvcs, backups)
    assert a == {"volume": "vol-a", "pv_name": "vol-a", "pvc_namespace": "apps", "pvc_name": "data", "size": 67108864,
                 "access_modes": ["ReadWriteOnce"], "storage_class": "longhorn", "number_of_replicas": 3,
                 "last_backup": {"name": "backup-a1", "url": "s3://b@us-east-1/?backup=backup-a1&volume=vol-a",
                                 "created_at": "2026-11-22T01:00:00Z"}}
    # No PV any more: names from kubernetesStatus, access mode from the volume, newest Completed backup.
    assert (b["pv_name"], b["pvc_namespace"], b["pvc_name"], b["storage_class"]) == ("pv-gone", "old", "gone", None)
    assert b["access_modes"] == ["ReadWriteMany"] and b["number_of_replicas"] == 2
    assert b["last_backup"]["name"] == "backup-b2"


def test_volume_mapping_without_anything_is_null():
    [entry] = cs.volume_mapping([volume("vol-x")], [], [], [])
    assert entry["pv_name"] is None and entry["pvc_name"] is None and entry["last_backup"] is None


@pytest.mark.parametrize("baselines, message", [
    (["text"], "baselines\\[0\\]: 'text' is not a baseline; give a dict with a name"),
    ([{"stdout": "1"}], "baselines\\[0\\]: name None is missing or empty"),
    ([{"name": "a"}, {"name": "a"}], "the name 'a' is used twice"),
])
def test_check_baselines_refuses(baselines, message):
    with pytest.raises(cs.ExportError, match=message):
        cs.check_baselines(baselines)


def test_manifest_contract_and_sha256():
    data = b"apiVersion: v1\n"
    manifest = cs.build_manifest("2026-11-22T01:23:45Z", "v1.10.2", "v1.31.0", {"volumes.yaml": {"sha256": cs.sha256_hex(data), "objects": 1}},
                                 [], [{"name": "rows", "stdout": "3\n", "rc": 0}])
    assert set(manifest) == {"format", "exported_at", "longhorn_version", "kubernetes_version", "files", "volumes", "baselines"}
    assert manifest["format"] == "homelab.longhorn_dr/cluster-state/v1"
    assert manifest["files"]["volumes.yaml"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert cs.dump_manifest(manifest).endswith(b"}\n")


def test_reuse_only_for_identical_young_intact_exports():
    now = datetime.datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
    old = cs.build_manifest("2026-11-22T01:30:00Z", "v1.10.2", "v1.31.0", {}, [], [])
    fresh = dict(old, exported_at="2026-11-22T02:00:00Z")
    assert cs.reuse_reason(old, True, fresh, now, None) is None, "without max_age every run is a new export"
    assert cs.reuse_reason(old, True, fresh, now, 3600) == "identical content exported at 2026-11-22T01:30:00Z, younger than max_age"
    assert cs.reuse_reason(old, True, fresh, now, 1800) is None, "exactly max_age old is too old"
    assert cs.reuse_reason(old, False, fresh, now, 3600) is None, "a file changed on disk"
    assert cs.reuse_reason(None, False, fresh, now, 3600) is None
    assert cs.reuse_reason(old, True, dict(fresh, longhorn_version="v1.10.3"), now, 3600) is None
    assert cs.reuse_reason(dict(old, format="other/v2"), True, dict(fresh, format="other/v2"), now, 3600) is None


@pytest.mark.parametrize("upload_prefix, prefix, expected", [
    ("cluster-state/", "", "cluster-state/"),
    ("/cluster-state", "", "cluster-state/"),
    ("", "", ""),
    ("backupstore-copies/", "", "backupstore-copies/"),
    ("backupstore/", "cluster-a", "backupstore/"),
    ("cluster-a/cluster-state/", "cluster-a", "cluster-a/cluster-state/"),
])
def test_upload_prefix_outside_the_backupstore(upload_prefix, prefix, expected):
    root = ("%s/backupstore/" % prefix) if prefix else "backupstore/"
    assert cs.check_upload_prefix(upload_prefix, root) == expected


@pytest.mark.parametrize("upload_prefix, root", [
    ("backupstore/", "backupstore/"),
    ("backupstore", "backupstore/"),
    ("/backupstore/cluster-state/", "backupstore/"),
    ("cluster-a/backupstore/x", "cluster-a/backupstore/"),
])
def test_upload_prefix_inside_the_backupstore_is_refused(upload_prefix, root):
    with pytest.raises(cs.ExportError, match="is inside the backupstore .*must only hold Longhorn's objects"):
        cs.check_upload_prefix(upload_prefix, root)


def test_upload_prefix_with_dot_dot_is_refused():
    with pytest.raises(cs.ExportError, match="must not contain '..'"):
        cs.check_upload_prefix("x/../backupstore/", "backupstore/")


def test_upload_keys_put_the_manifest_last():
    keys = cs.upload_keys("cluster-state/", "2026-11-22T01:23:45Z", ["manifest.json", "volumes.yaml", "backuptargets.yaml"])
    assert keys == [("volumes.yaml", "cluster-state/20261122T012345Z/volumes.yaml"),
                    ("backuptargets.yaml", "cluster-state/20261122T012345Z/backuptargets.yaml"),
                    ("manifest.json", "cluster-state/20261122T012345Z/manifest.json")]


def test_build_files_legacy_adds_only_the_backup_target_settings():
    settings = [{"metadata": {"name": n, "namespace": "longhorn-system"}, "value": v}
                for n, v in (("backup-target", "s3://b@us-east-1/"), ("backup-target-credential-secret", "minio"),
                             ("backupstore-poll-interval", "300"), ("current-longhorn-version", "v1.7.2"))]
    cluster = {"Setting": settings}
    current = cs.build_files(cluster, yaml.safe_dump)
    assert cs.FILE_SETTINGS not in current and current[cs.FILE_VOLUMES][1] == 0
    legacy = cs.build_files(cluster, yaml.safe_dump, legacy=True)
    data, count = legacy[cs.FILE_SETTINGS]
    assert count == 3
    names = [i["metadata"]["name"] for i in yaml.safe_load(data)["items"]]
    assert names == ["backup-target", "backup-target-credential-secret", "backupstore-poll-interval"]
    assert cs.setting_value(settings, "current-longhorn-version") == "v1.7.2"
    assert cs.setting_value(settings, "missing") == ""
