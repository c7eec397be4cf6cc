# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""PersistentVolumes and claims for existing Longhorn volumes (ref §5.1-§5.3)."""

from __future__ import annotations

import json

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import DRIVER_NAME, parse_rfc3339

STATIC_STORAGE_CLASS = "longhorn-static"  # Longhorn's default-longhorn-static-storage-class (ref §5.1)
ACCESS_MODES = {"rwo": "ReadWriteOnce", "rwx": "ReadWriteMany"}
SOURCE_KUBERNETES_STATUS = "kubernetes_status"
SOURCE_MANIFEST = "manifest"
SOURCE_MAPPING = "mapping"
SOURCE_PV_CLAIM_REF = "pv_claim_ref"
MANIFEST_FORMAT = "homelab.longhorn_dr/cluster-state/v1"


def load_manifest(text, path="manifest"):
    """The cluster-state manifest's volumes by volume name; ValueError names the problem."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ValueError("%s is not JSON: %s" % (path, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError("%s is not a cluster-state manifest (format %r, expected %r)"
                         % (path, manifest.get("format") if isinstance(manifest, dict) else None, MANIFEST_FORMAT))
    return {entry["volume"]: entry for entry in manifest.get("volumes") or [] if isinstance(entry, dict) and entry.get("volume")}


def planned_name(volume):
    """The name a volume stands in for: the planned volume of a restore retry (longhorn_volume_restore retry_failed), else its own."""
    from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_restore import RETRY_OF_ANNOTATION, retry_attempt
    target = (volume["metadata"].get("annotations") or {}).get(RETRY_OF_ANNOTATION)
    if target and retry_attempt(volume, target) is not None:
        return target
    return volume["metadata"]["name"]


def _lookup(table, volume):
    """An entry of ``table`` for the volume's own name, else for the planned volume a retry stands in for."""
    return table.get(volume["metadata"]["name"]) or table.get(planned_name(volume)) or {}


def claim_for(volume, manifest_entries, mapping):
    """(namespace, pvc name, source) for a volume, looked up in the issue's order: kubernetesStatus, manifest, mapping."""
    status = (volume.get("status") or {}).get("kubernetesStatus") or {}
    if status.get("namespace") and status.get("pvcName"):
        return status["namespace"], status["pvcName"], SOURCE_KUBERNETES_STATUS
    entry = _lookup(manifest_entries, volume)
    if entry.get("pvc_namespace") and entry.get("pvc_name"):
        return entry["pvc_namespace"], entry["pvc_name"], SOURCE_MANIFEST
    explicit = _lookup(mapping, volume)
    if explicit.get("namespace") and explicit.get("pvc_name"):
        return explicit["namespace"], explicit["pvc_name"], SOURCE_MAPPING
    return None, None, None


def default_pv_name(volume, manifest_entries):
    """The PV name for a volume without one: the exported one, else the planned volume's name (so a retry gets the original)."""
    return _lookup(manifest_entries, volume).get("pv_name") or planned_name(volume)


def storage_class_for(volume, manifest_entries, mapping, backup_volume_classes, default):
    """The original StorageClass (mapping, manifest, BackupVolume.status.storageClassName), else ``default``."""
    for candidate in (_lookup(mapping, volume).get("storage_class"), _lookup(manifest_entries, volume).get("storage_class"),
                      _lookup(backup_volume_classes, volume)):
        if candidate:
            return candidate
    return default


def pv_body(volume, pv_name, storage_class, fs_type, claim_namespace, claim_name):
    """The PV Longhorn's pvCreate builds (ref §5.1), pre-bound to the claim so no other claim can take it."""
    spec = volume.get("spec") or {}
    attributes = {
        "numberOfReplicas": str(spec.get("numberOfReplicas") or 3),
        "staleReplicaTimeout": str(spec.get("staleReplicaTimeout") or 2880),
    }
    if spec.get("diskSelector"):
        attributes["diskSelector"] = ",".join(spec["diskSelector"])
    if spec.get("nodeSelector"):
        attributes["nodeSelector"] = ",".join(spec["nodeSelector"])
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": str(spec.get("size"))},
            "accessModes": [ACCESS_MODES.get(spec.get("accessMode") or "rwo", "ReadWriteOnce")],
            "volumeMode": "Filesystem",
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "csi": {"driver": DRIVER_NAME, "volumeHandle": volume["metadata"]["name"], "fsType": fs_type,
                    "volumeAttributes": attributes},
        },
    }
    if claim_name:
        body["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": claim_namespace, "name": claim_name}
    return body


def pvc_body(volume, pv_name, storage_class, namespace, name):
    """The claim Longhorn's pvcCreate builds (ref §5.2): same class and access mode, the volume's size, bound by volumeName."""
    spec = volume.get("spec") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": [ACCESS_MODES.get(spec.get("accessMode") or "rwo", "ReadWriteOnce")],
            "resources": {"requests": {"storage": str(spec.get("size"))}},
            "storageClassName": storage_class,
            "volumeMode": "Filesystem",
            "volumeName": pv_name,
        },
    }


def pv_conflict(pv, volume_name):
    """Why an existing PV cannot serve ``volume_name``, or None."""
    handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")
    if handle != volume_name:
        return "PV %s exists for volume %s" % (pv["metadata"]["name"], handle or "(not a CSI volume)")
    return None


def pvc_conflict(pvc, pv_name):
    """Why an existing claim cannot be bound to ``pv_name``, or None."""
    bound_to = (pvc.get("spec") or {}).get("volumeName")
    where = "%s/%s" % (pvc["metadata"].get("namespace"), pvc["metadata"]["name"])
    if not bound_to:
        return "PVC %s exists and waits for a dynamically provisioned volume, not PV %s" % (where, pv_name)
    if bound_to != pv_name:
        return "PVC %s is bound to PV %s, not to PV %s" % (where, bound_to, pv_name)
    return None


def restore_pending(volume):
    """A volume still restoring, or whose restore failed, must not get a PV (ref §1.5 step 3)."""
    status = volume.get("status") or {}
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Restore"), {})
    if condition.get("reason") == "RestoreFailure":
        return "the restore of volume %s failed (%s); it gets no PV" % (volume["metadata"]["name"], condition.get("message") or "RestoreFailure")
    if status.get("restoreRequired"):
        return "volume %s is still restoring (state %s)" % (volume["metadata"]["name"], status.get("state") or "unknown")
    return None


def _parse_time(value):
    return parse_rfc3339(value)


def replace_refusal(fresh_volume, restored_volume, backups):
    """Why a claim bound to ``fresh_volume`` may not be replaced by one on ``restored_volume``, or None.

    The emptiness check comes later, once the fresh volume is detached and its actualSize is final.
    """
    from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_restore import restored_from
    if fresh_volume is None:
        return "the claim's PV is not a Longhorn volume of this cluster"
    name = fresh_volume["metadata"]["name"]
    if (fresh_volume.get("status") or {}).get("lastBackup"):
        return "volume %s has a backup of its own, so it holds data someone meant to keep" % name
    origin = restored_from(restored_volume)
    backup = backups.get(origin[0]) if origin else None
    taken = _parse_time(((backup or {}).get("status") or {}).get("snapshotCreatedAt") or ((backup or {}).get("status") or {}).get("backupCreatedAt"))
    if taken is None:
        return "the time of the backup volume %s was restored from is unknown" % restored_volume["metadata"]["name"]
    created = _parse_time(fresh_volume["metadata"].get("creationTimestamp"))
    if created is None or created <= taken:
        return "volume %s was created %s, not after the backup was taken (%s)" % (
            name, fresh_volume["metadata"].get("creationTimestamp") or "at an unknown time", taken.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return None


def claim_users(pods, claim_name):
    """Pods that mount the claim."""
    return [p for p in pods if any(((v.get("persistentVolumeClaim") or {}).get("claimName") == claim_name)
                                   for v in (p.get("spec") or {}).get("volumes") or [])]
