# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Longhorn CRD manifest against the facts of the reference (§1), without upstream files."""

from __future__ import annotations

import pytest

from tests.lab.longhorn import CRDS_PATH, load_manifest

# ref §1 General conventions.
REFERENCE_SHORT_NAMES = {"BackupTarget": "lhbt", "Backup": "lhb", "BackupVolume": "lhbv", "Volume": "lhv",
                         "Snapshot": "lhsnap", "SystemBackup": "lhsb", "SystemRestore": "lhsr", "RecurringJob": "lhrj",
                         "Setting": "lhs"}
KINDS = set(REFERENCE_SHORT_NAMES) | {"EngineImage", "Node", "Engine", "Replica"}
CONDITION_KEYS = {"type", "status", "lastProbeTime", "lastTransitionTime", "reason", "message"}

# Every field the reference names, per kind (ref §1.1 - §1.9).
REFERENCE_FIELDS = {
    "BackupTarget": ["spec.backupTargetURL", "spec.credentialSecret", "spec.pollInterval", "spec.syncRequestedAt",
                     "status.ownerID", "status.available", "status.conditions", "status.lastSyncedAt"],
    "Backup": ["spec.snapshotName", "spec.labels", "spec.backupMode", "spec.backupBlockSize", "spec.syncRequestedAt",
               "status.ownerID", "status.state", "status.progress", "status.replicaAddress", "status.error",
               "status.url", "status.snapshotName", "status.snapshotCreatedAt", "status.backupCreatedAt",
               "status.size", "status.labels", "status.messages", "status.volumeName", "status.volumeSize",
               "status.volumeCreated", "status.volumeBackingImageName", "status.lastSyncedAt",
               "status.compressionMethod", "status.newlyUploadDataSize", "status.reUploadedDataSize",
               "status.backupTargetName"],
    "BackupVolume": ["spec.backupTargetName", "spec.volumeName", "spec.syncRequestedAt", "status.ownerID",
                     "status.lastModificationTime", "status.size", "status.labels", "status.createdAt",
                     "status.lastBackupName", "status.lastBackupAt", "status.dataStored", "status.messages",
                     "status.backingImageName", "status.backingImageChecksum", "status.storageClassName",
                     "status.lastSyncedAt"],
    "Volume": ["spec.size", "spec.frontend", "spec.fromBackup", "spec.numberOfReplicas", "spec.staleReplicaTimeout",
               "spec.dataEngine", "spec.accessMode", "spec.backupTargetName", "spec.backupCompressionMethod",
               "spec.backupBlockSize", "spec.Standby", "spec.restoreVolumeRecurringJob", "spec.dataLocality",
               "spec.nodeSelector", "spec.diskSelector", "spec.encrypted", "spec.migratable", "spec.dataSource",
               "spec.cloneMode", "spec.nodeID", "status.state", "status.robustness", "status.restoreRequired",
               "status.restoreInitiated", "status.isStandby", "status.lastBackup", "status.lastBackupAt",
               "status.actualSize", "status.currentNodeID", "status.conditions", "status.kubernetesStatus.pvName",
               "status.kubernetesStatus.pvStatus", "status.kubernetesStatus.namespace",
               "status.kubernetesStatus.pvcName", "status.kubernetesStatus.lastPVCRefAt",
               "status.kubernetesStatus.lastPodRefAt", "status.kubernetesStatus.workloadsStatus[].podName",
               "status.kubernetesStatus.workloadsStatus[].podStatus",
               "status.kubernetesStatus.workloadsStatus[].workloadName",
               "status.kubernetesStatus.workloadsStatus[].workloadType"],
    "Snapshot": ["spec.volume", "spec.createSnapshot", "spec.labels", "status.parent", "status.children",
                 "status.markRemoved", "status.userCreated", "status.creationTime", "status.size", "status.labels",
                 "status.ownerID", "status.error", "status.restoreSize", "status.readyToUse", "status.checksum"],
    "SystemBackup": ["spec.volumeBackupPolicy", "status.ownerID", "status.version", "status.gitCommit",
                     "status.managerImage", "status.state", "status.conditions", "status.createdAt",
                     "status.lastSyncedAt"],
    "SystemRestore": ["spec.systemBackup", "status.ownerID", "status.state", "status.sourceURL", "status.conditions"],
    "RecurringJob": ["spec.name", "spec.groups", "spec.cron", "spec.retain", "spec.concurrency", "spec.labels",
                     "spec.parameters", "spec.task", "status.ownerID", "status.executionCount"],
    "Setting": ["value", "status.applied"],
}

# Enums with the values the reference gives.
REFERENCE_ENUMS = {
    ("Backup", "spec.backupMode"): ["full", "incremental", ""],
    ("Backup", "spec.backupBlockSize"): ["-1", "2097152", "16777216"],
    ("Volume", "spec.frontend"): ["blockdev", "iscsi", "nvmf", "ublk", ""],
    ("Volume", "spec.dataEngine"): ["v1", "v2"],
    ("Volume", "spec.accessMode"): ["rwo", "rwx"],
    ("Volume", "spec.backupCompressionMethod"): ["none", "lz4", "gzip"],
    ("Volume", "spec.backupBlockSize"): ["2097152", "16777216"],
    ("Volume", "spec.restoreVolumeRecurringJob"): ["ignored", "enabled", "disabled"],
    ("RecurringJob", "spec.task"): ["snapshot", "snapshot-force-create", "snapshot-cleanup", "snapshot-delete",
                                    "backup", "backup-force-create", "filesystem-trim", "system-backup"],
}

# Enumerated in the reference but not constrained by Longhorn's CRDs (the webhooks check them);
# a stricter lab schema would refuse what a real cluster accepts.
UNCONSTRAINED = [("Backup", "status.state"), ("Volume", "status.state"), ("Volume", "status.robustness"),
                 ("SystemBackup", "spec.volumeBackupPolicy"), ("SystemBackup", "status.state"),
                 ("SystemRestore", "status.state")]

# Longhorn-shaped objects: every field must be declared (else the API server prunes it) with a fitting type.
SAMPLES = {
    "Volume": {
        "apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
        "metadata": {"name": "pvc-1", "namespace": "longhorn-system", "labels": {"longhornvolume": "pvc-1"}},
        "spec": {"size": "1073741824", "frontend": "blockdev", "fromBackup": "", "numberOfReplicas": 3,
                 "staleReplicaTimeout": 2880, "dataEngine": "v1", "accessMode": "rwo", "backupTargetName": "default",
                 "backupCompressionMethod": "lz4", "backupBlockSize": "2097152", "Standby": False,
                 "restoreVolumeRecurringJob": "ignored", "dataLocality": "disabled", "nodeSelector": [],
                 "diskSelector": [], "encrypted": False, "migratable": False, "dataSource": "", "cloneMode": "",
                 "nodeID": "", "snapshotMaxCount": 250, "snapshotMaxSize": "0", "replicaAutoBalance": "ignored",
                 "revisionCounterDisabled": True, "unmapMarkSnapChainRemoved": "ignored", "image": "engine:v1.10.2",
                 "freezeFilesystemForSnapshot": "ignored", "offlineRebuilding": "ignored",
                 "replicaRebuildingBandwidthLimit": 0},
        "status": {"state": "detached", "robustness": "unknown", "restoreRequired": False, "restoreInitiated": True,
                   "isStandby": False, "lastBackup": "backup-1", "lastBackupAt": "2026-01-02T03:04:05Z",
                   "actualSize": 0, "currentNodeID": "", "ownerID": "node-1", "frontendDisabled": False,
                   "conditions": [{"type": "Restore", "status": "False", "reason": "", "message": "",
                                   "lastProbeTime": "", "lastTransitionTime": "2026-01-02T03:04:05Z"}],
                   "kubernetesStatus": {"pvName": "", "pvStatus": "", "namespace": "app", "pvcName": "data",
                                        "lastPVCRefAt": "2026-01-02T03:04:05Z", "lastPodRefAt": "",
                                        "workloadsStatus": None},
                   "cloneStatus": {"sourceVolume": "", "snapshot": "", "state": "", "attemptCount": 0,
                                   "nextAllowedAttemptAt": ""}},
    },
    "Backup": {
        "apiVersion": "longhorn.io/v1beta2", "kind": "Backup",
        "metadata": {"name": "backup-1a2b3c4d5e6f7a8b", "labels": {"backup-volume": "pvc-1", "backup-target": "default"}},
        "spec": {"snapshotName": "snap-1", "labels": {"KubernetesStatus": "{}"}, "backupMode": "incremental",
                 "backupBlockSize": "2097152", "syncRequestedAt": None},
        "status": {"ownerID": "node-1", "state": "Completed", "progress": 100, "replicaAddress": "", "error": "",
                   "url": "s3://b@us-east-1/?backup=backup-1a2b3c4d5e6f7a8b&volume=pvc-1", "snapshotName": "snap-1",
                   "snapshotCreatedAt": "2026-01-02T03:04:05Z", "backupCreatedAt": "2026-01-02T03:05:05Z",
                   "size": "2097152", "labels": {"KubernetesStatus": "{}"}, "messages": None, "volumeName": "pvc-1",
                   "volumeSize": "1073741824", "volumeCreated": "2026-01-02T03:04:05Z", "volumeBackingImageName": "",
                   "lastSyncedAt": "2026-01-02T03:06:05Z", "compressionMethod": "lz4", "newlyUploadDataSize": "1024",
                   "reUploadedDataSize": "0", "backupTargetName": "default"},
    },
    "SystemBackup": {
        "apiVersion": "longhorn.io/v1beta2", "kind": "SystemBackup", "metadata": {"name": "sb-1"},
        "spec": {"volumeBackupPolicy": "if-not-present"},
        "status": {"ownerID": "node-1", "version": "v1.10.2", "gitCommit": "abc", "managerImage": "m:v1.10.2",
                   "state": "Ready", "createdAt": "2026-01-02T03:04:05Z", "lastSyncedAt": "2026-01-02T03:04:05Z",
                   "conditions": None},
    },
    "Setting": {"apiVersion": "longhorn.io/v1beta2", "kind": "Setting", "metadata": {"name": "backup-compression-method"},
                "value": "lz4", "status": {"applied": True}},
}


@pytest.fixture(scope="module")
def crds():
    docs = load_manifest(CRDS_PATH)
    assert all(doc["kind"] == "CustomResourceDefinition" for doc in docs)
    return {doc["spec"]["names"]["kind"]: doc for doc in docs}


def schema_of(crd):
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def node(crd, path):
    """The schema node of a dotted path; ``[]`` steps into array items."""
    current = schema_of(crd)
    for part in path.split("."):
        is_list = part.endswith("[]")
        current = current["properties"][part[:-2] if is_list else part]
        if is_list:
            current = current["items"]
    return current


def structural_problems(schema, path="", at_root=True):
    """Rules of a structural schema (apiextensions.k8s.io/v1) that hand-written YAML can break."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string") \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append("%s: no type" % (path or "."))
    kind = schema.get("type")
    if "properties" in schema and kind != "object":
        problems.append("%s: properties on a %s" % (path, kind))
    if "properties" in schema and "additionalProperties" in schema:
        problems.append("%s: properties and additionalProperties together" % path)
    if kind == "array" and not isinstance(schema.get("items"), dict):
        problems.append("%s: array without one items schema" % path)
    if "enum" in schema and kind and not all(isinstance(value, {"string": str, "integer": int}.get(kind, object))
                                             for value in schema["enum"]):
        problems.append("%s: enum values do not match type %s" % (path, kind))
    for key in ("required",):
        for name in schema.get(key, []):
            if name not in schema.get("properties", {}):
                problems.append("%s: required %s is not a property" % (path, name))
    for forbidden in ("$ref", "allOf", "oneOf", "anyOf", "not", "definitions", "dependencies", "patternProperties"):
        if forbidden in schema:
            problems.append("%s: %s is not allowed here" % (path, forbidden))
    if at_root and schema.get("properties", {}).get("metadata", {}) != {"type": "object"}:
        problems.append("metadata must be a bare object at the root")
    for name, child in schema.get("properties", {}).items():
        problems.extend(structural_problems(child, "%s.%s" % (path, name), False))
    if isinstance(schema.get("items"), dict):
        problems.extend(structural_problems(schema["items"], path + "[]", False))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(structural_problems(schema["additionalProperties"], path + "{}", False))
    return problems


def sample_problems(value, schema, path=""):
    """Fields of a sample object the schema would prune or reject by type."""
    if value is None:
        return [] if schema.get("nullable") else ["%s: null not allowed" % path]
    expected = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}[schema["type"]]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return ["%s: %r is not %s" % (path, value, schema["type"])]
    if "enum" in schema and value not in schema["enum"]:
        return ["%s: %r not in enum" % (path, value)]
    problems = []
    if isinstance(value, dict) and path != ".metadata":
        for key, item in value.items():
            if key in schema.get("properties", {}):
                problems.extend(sample_problems(item, schema["properties"][key], "%s.%s" % (path, key)))
            elif isinstance(schema.get("additionalProperties"), dict):
                problems.extend(sample_problems(item, schema["additionalProperties"], "%s.%s" % (path, key)))
            else:
                problems.append("%s.%s: would be pruned" % (path, key))
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(sample_problems(item, schema["items"], "%s[%d]" % (path, index)))
    return problems


def test_manifest_has_the_lab_kinds_as_longhorn_defines_them(crds):
    assert set(crds) == KINDS
    for kind, crd in crds.items():
        spec = crd["spec"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert spec["group"] == "longhorn.io" and spec["scope"] == "Namespaced", kind
        assert crd["metadata"]["name"] == "%s.longhorn.io" % spec["names"]["plural"]
        assert spec["names"]["singular"] == kind.lower() and spec["names"]["listKind"] == kind + "List"
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1beta2", True, True), kind
        assert version["subresources"] == {"status": {}}, kind
        assert spec["names"]["shortNames"], kind


@pytest.mark.parametrize("kind, short_name", sorted(REFERENCE_SHORT_NAMES.items()))
def test_short_names_follow_reference(crds, kind, short_name):
    assert crds[kind]["spec"]["names"]["shortNames"] == [short_name]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_schema_is_structural(crds, kind):
    assert structural_problems(schema_of(crds[kind])) == []


@pytest.mark.parametrize("kind", sorted(REFERENCE_FIELDS))
def test_every_field_the_reference_names_is_declared(crds, kind):
    missing = []
    for path in REFERENCE_FIELDS[kind]:
        try:
            node(crds[kind], path)
        except KeyError:
            missing.append(path)
    assert missing == []


@pytest.mark.parametrize("kind, path", sorted(REFERENCE_ENUMS))
def test_enums_have_the_reference_values(crds, kind, path):
    assert node(crds[kind], path)["enum"] == REFERENCE_ENUMS[(kind, path)]


@pytest.mark.parametrize("kind, path", UNCONSTRAINED)
def test_states_are_not_stricter_than_longhorn(crds, kind, path):
    assert node(crds[kind], path).get("enum") is None
    assert node(crds[kind], path)["type"] == "string"


def test_field_types_that_matter(crds):
    volume = crds["Volume"]
    # ref §1.5: int64 serialized as a string; the DR flag is capitalised.
    assert node(volume, "spec.size") == {"type": "string", "format": "int64"}
    assert node(volume, "spec.Standby")["type"] == "boolean"
    assert "standby" not in schema_of(volume)["properties"]["spec"]["properties"]
    assert node(volume, "spec.numberOfReplicas")["type"] == "integer"
    assert node(volume, "spec.staleReplicaTimeout")["type"] == "integer"
    assert node(crds["Backup"], "status.size")["type"] == "string"
    assert node(crds["Backup"], "status.progress")["type"] == "integer"
    assert node(crds["BackupTarget"], "status.available")["type"] == "boolean"
    # ref §1.1: pollInterval is a Duration string, syncRequestedAt a nullable date-time.
    assert node(crds["BackupTarget"], "spec.pollInterval")["type"] == "string"
    assert node(crds["BackupTarget"], "spec.syncRequestedAt") == {"type": "string", "format": "date-time", "nullable": True}
    assert node(crds["BackupTarget"], "status.lastSyncedAt")["format"] == "date-time"
    assert node(crds["Snapshot"], "spec")["required"] == ["volume"]
    assert node(crds["SystemRestore"], "spec")["required"] == ["systemBackup"]
    assert schema_of(crds["Setting"])["required"] == ["value"]


@pytest.mark.parametrize("kind", ["BackupTarget", "Volume", "SystemBackup", "SystemRestore", "EngineImage", "Node", "Engine",
                                  "Replica"])
def test_conditions_have_the_condition_keys(crds, kind):
    conditions = node(crds[kind], "status.conditions")
    assert conditions["type"] == "array" and conditions["nullable"] is True
    assert set(conditions["items"]["properties"]) == CONDITION_KEYS
    assert all(field["type"] == "string" for field in conditions["items"]["properties"].values())


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_longhorn_shaped_objects_keep_all_fields(crds, kind):
    assert sample_problems(SAMPLES[kind], schema_of(crds[kind])) == []


def test_sample_check_catches_pruned_and_mistyped_fields(crds):
    bad = {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume", "metadata": {},
           "spec": {"size": 1073741824, "standby": True, "frontend": "scsi"}}
    assert sorted(sample_problems(bad, schema_of(crds["Volume"]))) == [
        ".spec.frontend: 'scsi' not in enum", ".spec.size: 1073741824 is not string", ".spec.standby: would be pruned"]
