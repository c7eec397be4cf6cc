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


def claim_for(volume, manifest_entries, mapping):
    """(namespace, pvc name, source) for a volume, looked up in the issue's order: kubernetesStatus, manifest, mapping."""
    name = volume["metadata"]["name"]
    status = (volume.get("status") or {}).get("kubernetesStatus") or {}
    if status.get("namespace") and status.get("pvcName"):
        return status["namespace"], status["pvcName"], SOURCE_KUBERNETES_STATUS
    entry = manifest_entries.get(name) or {}
    if entry.get("pvc_namespace") and entry.get("pvc_name"):
        return entry["pvc_namespace"], entry["pvc_name"], SOURCE_MANIFEST
    explicit = mapping.get(name) or {}
    if explicit.get("namespace") and explicit.get("pvc_name"):
        return explicit["namespace"], explicit["pvc_name"], SOURCE_MAPPING
    return None, None, None


def storage_class_for(volume_name, manifest_entries, mapping, backup_volume_classes, default):
    """The original StorageClass (mapping, manifest, BackupVolume.status.storageClassName), else ``default``."""
    for candidate in ((mapping.get(volume_name) or {}).get("storage_class"), (manifest_entries.get(volume_name) or {}).get("storage_class"),
                      backup_volume_classes.get(volume_name)):
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
    """A volume still restoring must not get a PV yet (ref §1.5 step 3)."""
    status = volume.get("status") or {}
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
