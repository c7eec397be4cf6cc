# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Pure logic of longhorn_cluster_state: which objects, how they are cleaned, the manifest, the reuse decision.

Nothing here talks to Kubernetes or S3; the module reads the lists and hands them in.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import DRIVER_NAME, parse_rfc3339

MANIFEST_FORMAT = "homelab.longhorn_dr/cluster-state/v1"
MANIFEST_NAME = "manifest.json"
VERSION_SETTING = "current-longhorn-version"
# ref §1.2: up to v1.7 these Settings are the source of truth of the backup target.
LEGACY_BACKUP_TARGET_SETTINGS = ("backup-target", "backup-target-credential-secret", "backupstore-poll-interval")

# One file per kind, in the order the manifest lists them.
FILE_PVCS = "persistentvolumeclaims.yaml"
FILE_PVS = "persistentvolumes.yaml"
FILE_VOLUMES = "volumes.yaml"
FILE_STORAGECLASSES = "storageclasses.yaml"
FILE_RECURRINGJOBS = "recurringjobs.yaml"
FILE_BACKUPTARGETS = "backuptargets.yaml"
FILE_SETTINGS = "settings.yaml"  # Longhorn <= 1.7 only
EXPORT_FILES = (FILE_PVCS, FILE_PVS, FILE_VOLUMES, FILE_STORAGECLASSES, FILE_RECURRINGJOBS, FILE_BACKUPTARGETS, FILE_SETTINGS)

# Metadata the API server or controllers write, which changes without the object changing.
NOISY_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
NOISY_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    # Longhorn's own copy of the StorageClass it applied from its ConfigMap.
    "longhorn.io/last-applied-configmap",
    # Written by the PV controller when it binds; it writes them again on a restore.
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
)
# ref §1.5: the kubernetesStatus keys that name the PV and PVC; workloads and *RefAt change with every pod.
KUBERNETES_STATUS_KEYS = ("namespace", "pvName", "pvStatus", "pvcName")
# Volume spec fields that say where it is attached right now (ref §1.5), not what it is.
VOLUME_ATTACHMENT_SPEC = ("nodeID", "migrationNodeID", "lastAttachedBy")
# Volume status kept in the export: what a restore needs to know (ref §1.5, §5.3).
VOLUME_STATUS_KEYS = ("isStandby", "lastBackup", "lastBackupAt")
ACCESS_MODES = {"rwo": ["ReadWriteOnce"], "rwx": ["ReadWriteMany"]}


class ExportError(ValueError):
    """Bad input to the export (a baseline without a name, an upload prefix inside the backupstore)."""


def _name(obj):
    return (obj.get("metadata") or {}).get("name") or ""


def _namespace(obj):
    return (obj.get("metadata") or {}).get("namespace") or ""


def sort_key(obj):
    return (_namespace(obj), _name(obj))


def clean_metadata(obj):
    """A deep copy without the metadata that changes on its own (ref: kubectl's managedFields, resourceVersion, ...)."""
    cleaned = copy.deepcopy(obj)
    metadata = cleaned.get("metadata") or {}
    for key in NOISY_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        for key in NOISY_ANNOTATIONS:
            annotations.pop(key, None)
        if not annotations:
            metadata.pop("annotations", None)
    for key in ("labels", "finalizers"):
        if key in metadata and not metadata[key]:
            metadata.pop(key)
    return cleaned


def clean_pvc(pvc):
    """Spec and metadata; the status (phase, capacity) belongs to the cluster that bound it."""
    cleaned = clean_metadata(pvc)
    cleaned.pop("status", None)
    return cleaned


def clean_pv(pv):
    """Spec and metadata; ``claimRef`` keeps only kind/namespace/name, as Longhorn's system restore does (ref §2)."""
    cleaned = clean_metadata(pv)
    cleaned.pop("status", None)
    claim = (cleaned.get("spec") or {}).get("claimRef")
    if isinstance(claim, dict):
        for key in ("uid", "resourceVersion"):
            claim.pop(key, None)
    return cleaned


def clean_volume(volume):
    """Spec without where it is attached now, and the status a restore needs: PV/PVC names, last backup, standby.

    The attachment belongs to the cluster as it runs now (and changes with every pod move); a restored volume
    starts detached (ref §1.5 restore lifecycle).
    """
    cleaned = clean_metadata(volume)
    spec = cleaned.get("spec")
    if isinstance(spec, dict):
        for key in VOLUME_ATTACHMENT_SPEC:
            spec.pop(key, None)
    status = volume.get("status") or {}
    kept = {key: status[key] for key in VOLUME_STATUS_KEYS if key in status}
    kstatus = status.get("kubernetesStatus") or {}
    if kstatus:
        kept["kubernetesStatus"] = {key: kstatus.get(key) or "" for key in KUBERNETES_STATUS_KEYS}
    if kept:
        cleaned["status"] = kept
    else:
        cleaned.pop("status", None)
    return cleaned


def clean_spec_only(obj):
    """Metadata and spec (RecurringJob: executionCount and ownerID are runtime)."""
    cleaned = clean_metadata(obj)
    cleaned.pop("status", None)
    return cleaned


def clean_backup_target(target):
    """Spec without ``syncRequestedAt``, which Longhorn rewrites on every poll (ref §1.1); the Secret only by name."""
    cleaned = clean_spec_only(target)
    spec = cleaned.get("spec")
    if isinstance(spec, dict):
        spec.pop("syncRequestedAt", None)
    return cleaned


def clean_setting(setting):
    return clean_spec_only(setting)


def with_kind(obj, api_version, kind):
    """Lists from the API omit apiVersion/kind on their items; put them back so each item can be applied."""
    obj = dict(obj)
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj


def is_longhorn_pv(pv):
    return ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER_NAME


def select_objects(pvcs, pvs, storage_classes):
    """``(pvcs, pvs, storage classes)`` to export.

    PVs: those whose ``csi.driver`` is Longhorn's. PVCs: those bound to one of them (``spec.volumeName``).
    StorageClasses: those whose provisioner is Longhorn's, plus any other one a selected PV or PVC names.
    """
    longhorn_pvs = [pv for pv in pvs if is_longhorn_pv(pv)]
    pv_names = {_name(pv) for pv in longhorn_pvs}
    bound = [pvc for pvc in pvcs if (pvc.get("spec") or {}).get("volumeName") in pv_names]
    used_classes = {(o.get("spec") or {}).get("storageClassName") for o in longhorn_pvs + bound}
    classes = [sc for sc in storage_classes if sc.get("provisioner") == DRIVER_NAME or _name(sc) in used_classes]
    return bound, longhorn_pvs, classes


def dump_yaml(items, yaml_dump):
    """One ``v1/List`` document: items sorted by namespace/name, keys sorted, long strings unfolded."""
    document = {"apiVersion": "v1", "kind": "List", "items": sorted(items, key=sort_key)}
    return yaml_dump(document, default_flow_style=False, sort_keys=True, allow_unicode=True, width=100000)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def parse_quantity_bytes(value):
    """Bytes from Longhorn's size strings (``"67108864"``) or a Kubernetes quantity (``64Mi``, ``1G``); None if unknown."""
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    units = (("Ki", 2 ** 10), ("Mi", 2 ** 20), ("Gi", 2 ** 30), ("Ti", 2 ** 40), ("Pi", 2 ** 50), ("Ei", 2 ** 60),
             ("k", 10 ** 3), ("M", 10 ** 6), ("G", 10 ** 9), ("T", 10 ** 12), ("P", 10 ** 15), ("E", 10 ** 18))
    for suffix, factor in units:
        if text.endswith(suffix):
            try:
                return int(float(text[:-len(suffix)]) * factor)
            except ValueError:
                return None
    try:
        return int(float(text))
    except ValueError:
        return None


def _parse_time(text):
    return parse_rfc3339(text)


def last_backups(backups):
    """``{volume: backup}`` of the newest Completed Backup per volume (by upload time, else snapshot time)."""
    newest = {}
    for backup in backups:
        status = backup.get("status") or {}
        if status.get("state") != "Completed":
            continue
        volume = status.get("volumeName") or ((backup.get("metadata") or {}).get("labels") or {}).get("backup-volume")
        when = _parse_time(status.get("backupCreatedAt")) or _parse_time(status.get("snapshotCreatedAt"))
        if not volume or when is None:
            continue
        if volume not in newest or when > newest[volume][0]:
            newest[volume] = (when, backup)
    return {volume: entry[1] for volume, entry in newest.items()}


def backup_entry(backup):
    if backup is None:
        return None
    status = backup.get("status") or {}
    return {"name": _name(backup), "url": status.get("url") or "",
            "created_at": status.get("backupCreatedAt") or status.get("snapshotCreatedAt") or ""}


def volume_mapping(volumes, pvs, pvcs, backups):
    """The manifest's ``volumes``: one entry per Longhorn volume, PVC -> PV -> volume -> last backup.

    The PV is the one whose ``csi.volumeHandle`` is the volume; the PVC is the PV's bound claim. A volume
    without a PV (deleted claim, restored volume) falls back on its ``kubernetesStatus`` (ref §1.5).
    The last backup is the Backup named by ``status.lastBackup`` when it is Completed, else the newest Completed one.
    """
    pv_by_volume = {}
    for pv in pvs:
        handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")
        if is_longhorn_pv(pv) and handle:
            pv_by_volume[handle] = pv
    pvc_by_pv = {(pvc.get("spec") or {}).get("volumeName"): pvc for pvc in pvcs if (pvc.get("spec") or {}).get("volumeName")}
    completed = {_name(b): b for b in backups if (b.get("status") or {}).get("state") == "Completed"}
    newest = last_backups(backups)
    entries = []
    for volume in sorted(volumes, key=_name):
        name = _name(volume)
        spec = volume.get("spec") or {}
        status = volume.get("status") or {}
        kstatus = status.get("kubernetesStatus") or {}
        pv = pv_by_volume.get(name)
        pvc = pvc_by_pv.get(_name(pv)) if pv else None
        claim = ((pv or {}).get("spec") or {}).get("claimRef") or {}
        if pvc is not None:
            pvc_namespace, pvc_name = _namespace(pvc), _name(pvc)
        elif claim.get("name"):
            pvc_namespace, pvc_name = claim.get("namespace") or "", claim["name"]
        else:
            pvc_namespace, pvc_name = kstatus.get("namespace") or "", kstatus.get("pvcName") or ""
        access_modes = ((pv or {}).get("spec") or {}).get("accessModes") or ((pvc or {}).get("spec") or {}).get("accessModes")
        if not access_modes:
            access_modes = ACCESS_MODES.get(spec.get("accessMode") or "rwo", [])
        storage_class = ((pv or {}).get("spec") or {}).get("storageClassName") or ((pvc or {}).get("spec") or {}).get("storageClassName")
        last = completed.get(status.get("lastBackup") or "") or newest.get(name)
        entries.append({
            "volume": name,
            "pv_name": _name(pv) if pv else (kstatus.get("pvName") or None),
            "pvc_namespace": pvc_namespace or None,
            "pvc_name": pvc_name or None,
            "size": parse_quantity_bytes(spec.get("size")),
            "access_modes": list(access_modes),
            "storage_class": storage_class or None,
            "number_of_replicas": spec.get("numberOfReplicas"),
            "last_backup": backup_entry(last),
        })
    return entries


def check_baselines(baselines):
    """The baselines as given, after checking each is a dict with a unique ``name``; raises ExportError."""
    seen = set()
    for index, baseline in enumerate(baselines or []):
        if not isinstance(baseline, dict):
            raise ExportError("baselines[%d]: %r is not a baseline; give a dict with a name" % (index, baseline))
        name = baseline.get("name")
        if not isinstance(name, str) or not name:
            raise ExportError("baselines[%d]: name %r is missing or empty; give each baseline a unique name" % (index, name))
        if name in seen:
            raise ExportError("baselines[%d]: the name %r is used twice; give each baseline a unique name" % (index, name))
        seen.add(name)
    return [dict(b) for b in baselines or []]


def build_manifest(exported_at, longhorn_version, kubernetes_version, files, volumes, baselines):
    """The manifest (contract read by the backup_gate role): ``files`` maps a file name to ``{sha256, objects}``."""
    return {
        "format": MANIFEST_FORMAT,
        "exported_at": exported_at,
        "longhorn_version": longhorn_version or "",
        "kubernetes_version": kubernetes_version or "",
        "files": {name: {"sha256": info["sha256"], "objects": info["objects"]} for name, info in sorted(files.items())},
        "volumes": volumes,
        "baselines": baselines,
    }


def dump_manifest(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def content_view(manifest):
    """What "identical content" compares: everything but ``exported_at``."""
    view = dict(manifest or {})
    view.pop("exported_at", None)
    return view


def format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_id(exported_at):
    """``2026-11-22T01:23:45Z`` -> ``20261122T012345Z``, the folder of one export in the bucket."""
    return exported_at.replace("-", "").replace(":", "")


def reuse_reason(existing, existing_files_ok, fresh, now, max_age):
    """Why the existing export can stand (then nothing is written), or None when a new one is due.

    ``existing`` is the manifest on disk (or None), ``existing_files_ok`` whether every file it lists is on disk
    with its recorded sha256, ``fresh`` the manifest just built. Without ``max_age`` every run is a new export.
    """
    if max_age is None or not existing or not existing_files_ok:
        return None
    if existing.get("format") != MANIFEST_FORMAT or content_view(existing) != content_view(fresh):
        return None
    exported = _parse_time(existing.get("exported_at"))
    if exported is None or (now - exported).total_seconds() >= max_age:
        return None
    return "identical content exported at %s, younger than max_age" % existing["exported_at"]


def normalize_upload_prefix(upload_prefix):
    """``cluster-state`` / ``/cluster-state/`` -> ``cluster-state/``; ``""`` stays the bucket root."""
    text = (upload_prefix or "").strip().strip("/")
    return text + "/" if text else ""


def check_upload_prefix(upload_prefix, backupstore_root):
    """The normalized prefix; ExportError when it lies inside the backupstore (ref §3.3: Longhorn's objects only)."""
    if ".." in (upload_prefix or "").split("/"):
        raise ExportError("upload_prefix %r must not contain '..'; give a key prefix such as cluster-state/" % upload_prefix)
    prefix = normalize_upload_prefix(upload_prefix)
    if prefix.startswith(backupstore_root):
        raise ExportError("upload_prefix %r is inside the backupstore %r; the backupstore must only hold Longhorn's objects, "
                          "choose a prefix outside it such as cluster-state/" % (upload_prefix, backupstore_root))
    return prefix


def upload_keys(prefix, exported_at, names):
    """Keys of one export in the bucket: ``<prefix><export id>/<file>``, manifest last."""
    base = "%s%s/" % (prefix, export_id(exported_at))
    ordered = [n for n in names if n != MANIFEST_NAME] + [MANIFEST_NAME]
    return [(name, base + name) for name in ordered]


def build_files(cluster, yaml_dump, legacy=False):
    """``{file name: (bytes, object count)}`` from the lists the module read (``cluster``: kind -> items).

    ``legacy`` (Longhorn <= 1.7) adds the backup-target Settings, the source of truth there (ref §1.2).
    """
    pvcs, pvs, classes = select_objects(cluster.get("PersistentVolumeClaim") or [], cluster.get("PersistentVolume") or [],
                                        cluster.get("StorageClass") or [])
    lh_api = "longhorn.io/v1beta2"
    objects = {
        FILE_PVCS: [clean_pvc(with_kind(o, "v1", "PersistentVolumeClaim")) for o in pvcs],
        FILE_PVS: [clean_pv(with_kind(o, "v1", "PersistentVolume")) for o in pvs],
        FILE_VOLUMES: [clean_volume(with_kind(o, lh_api, "Volume")) for o in cluster.get("Volume") or []],
        FILE_STORAGECLASSES: [clean_spec_only(with_kind(o, "storage.k8s.io/v1", "StorageClass")) for o in classes],
        FILE_RECURRINGJOBS: [clean_spec_only(with_kind(o, lh_api, "RecurringJob")) for o in cluster.get("RecurringJob") or []],
        FILE_BACKUPTARGETS: [clean_backup_target(with_kind(o, lh_api, "BackupTarget")) for o in cluster.get("BackupTarget") or []],
    }
    if legacy:
        objects[FILE_SETTINGS] = [clean_setting(with_kind(o, lh_api, "Setting")) for o in cluster.get("Setting") or []
                                  if _name(o) in LEGACY_BACKUP_TARGET_SETTINGS]
    return {name: (dump_yaml(items, yaml_dump).encode("utf-8"), len(items)) for name, items in objects.items()}


def setting_value(settings, name):
    for setting in settings or []:
        if _name(setting) == name:
            return setting.get("value") or ""
    return ""
