# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Restoring Longhorn volumes from backups: which backup, the Volume body, and how a restore ends (ref §1.3-§1.5, §4)."""

from __future__ import annotations

import json

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    parse_rfc3339,
    API_VERSION,
    backup_url_parts,
)

# Records which backup a volume was restored from, so a re-run recognises its own work.
RESTORED_FROM_ANNOTATION = "longhorn-dr.homelab/restored-from"
# Written by a system restore on the volumes it recreates (ref §2).
SYSTEM_RESTORED_BACKUP_ANNOTATION = "longhorn.io/last-system-restored-backup"
LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
ACCESS_MODE_LABEL = "longhorn.io/volume-access-mode"
KUBERNETES_STATUS_LABEL = "KubernetesStatus"
DEFAULT_STALE_REPLICA_TIMEOUT = 2880  # minutes; types.DefaultStaleReplicaTimeout, which the CR webhook does not apply (ref §1.5)

STATE_PLANNED = "Planned"
STATE_RESTORED = "Restored"
STATE_ALREADY_RESTORED = "AlreadyRestored"
STATE_RESTORING = "Restoring"
STATE_FAILED = "Failed"


def original_volume_name(backup_volume):
    """ref §1.4: spec.volumeName from v1.8, else the backup-volume label, else (<= 1.7) the CR name."""
    return ((backup_volume.get("spec") or {}).get("volumeName")
            or (backup_volume["metadata"].get("labels") or {}).get(LABEL_BACKUP_VOLUME)
            or backup_volume["metadata"]["name"])


def backup_volume_of(backup):
    """The original volume a Backup CR belongs to (ref §1.3: label backup-volume, status.volumeName)."""
    return (backup["metadata"].get("labels") or {}).get(LABEL_BACKUP_VOLUME) or (backup.get("status") or {}).get("volumeName") or ""


def kubernetes_status(labels):
    """The original PVC from the KubernetesStatus label (ref §1.3, §5.3); {} when absent or unreadable."""
    raw = (labels or {}).get(KUBERNETES_STATUS_LABEL)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_time(value):
    return parse_rfc3339(value)


def backup_time(backup):
    status = backup.get("status") or {}
    return status.get("backupCreatedAt") or status.get("snapshotCreatedAt") or ""


def completed(backup):
    return (backup.get("status") or {}).get("state") == "Completed"


def pick_backup(volume_name, backups, wanted=None, last_name=None):
    """The Backup CR to restore ``volume_name`` from: ``wanted`` by name, else the newest Completed one.

    ``last_name`` (BackupVolume.status.lastBackupName) wins when it is Completed, because that is
    what Longhorn's UI restores. Raises ValueError with a message that names what is missing.
    """
    mine = [b for b in backups if backup_volume_of(b) == volume_name]
    if wanted:
        chosen = next((b for b in mine if b["metadata"]["name"] == wanted), None)
        if chosen is None:
            raise ValueError("backup %s of volume %s is not in the cluster (synced backups: %s)"
                             % (wanted, volume_name, ", ".join(sorted(b["metadata"]["name"] for b in mine)) or "none"))
        if not completed(chosen):
            raise ValueError("backup %s of volume %s is %s, not Completed"
                             % (wanted, volume_name, (chosen.get("status") or {}).get("state") or "not synced yet"))
        return chosen
    done = [b for b in mine if completed(b)]
    if last_name:
        chosen = next((b for b in done if b["metadata"]["name"] == last_name), None)
        if chosen is not None:
            return chosen
    if not done:
        raise ValueError("volume %s has no Completed backup in the cluster yet (%d Backup CRs synced)" % (volume_name, len(mine)))
    return max(done, key=lambda b: (backup_time(b), b["metadata"]["name"]))


def volume_size(backup):
    """ref §1.5: with fromBackup the size becomes Backup.status.volumeSize; set exactly that."""
    size = (backup.get("status") or {}).get("volumeSize")
    return str(int(size)) if size not in (None, "") else None


def access_mode(backup):
    """ref §1.3, §1.5: the backup label longhorn.io/volume-access-mode, else rwo."""
    labels = (backup.get("status") or {}).get("labels") or {}
    return labels.get(ACCESS_MODE_LABEL) or "rwo"


def volume_body(name, namespace, backup, number_of_replicas=None, data_engine="v1", frontend="blockdev",
                stale_replica_timeout=DEFAULT_STALE_REPLICA_TIMEOUT):
    """A Volume restoring from ``backup`` (ref §1.5, §8 'Volume restore without a system backup')."""
    url = (backup.get("status") or {}).get("url") or ""
    spec = {
        "fromBackup": url,
        "frontend": frontend,  # the CR webhook sets no frontend; empty means none (ref §1.5)
        "accessMode": access_mode(backup),
        "dataEngine": data_engine,
        "staleReplicaTimeout": stale_replica_timeout,
    }
    size = volume_size(backup)
    if size is not None:
        spec["size"] = size
    if number_of_replicas:
        spec["numberOfReplicas"] = number_of_replicas
    return {
        "apiVersion": API_VERSION,
        "kind": "Volume",
        "metadata": {"name": name, "namespace": namespace, "annotations": {RESTORED_FROM_ANNOTATION: url}},
        "spec": spec,
    }


def restored_from(volume):
    """(backup, volume) a volume was restored from: our annotation, a system restore's, or spec.fromBackup."""
    annotations = volume["metadata"].get("annotations") or {}
    for url in (annotations.get(RESTORED_FROM_ANNOTATION), annotations.get(SYSTEM_RESTORED_BACKUP_ANNOTATION),
                (volume.get("spec") or {}).get("fromBackup")):
        if url:
            return backup_url_parts(url)
    return None


def restore_condition(volume):
    for condition in (volume.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Restore":
            return condition
    return {}


def restore_outcome(volume):
    """ref §1.5 step 3: done at restoreRequired=false and detached; failed at faulted or RestoreFailure.

    Returns (state, message): state is STATE_RESTORED, STATE_FAILED or STATE_RESTORING.
    """
    status = volume.get("status") or {}
    condition = restore_condition(volume)
    if status.get("robustness") == "faulted" or condition.get("reason") == "RestoreFailure":
        return STATE_FAILED, condition.get("message") or "volume is faulted (robustness %s)" % status.get("robustness")
    if not status.get("restoreInitiated"):
        # A new volume starts detached with restoreRequired=false; only restoreInitiated tells it apart.
        return STATE_RESTORING, "restore not started yet"
    if status.get("restoreRequired") is False and status.get("state") == "detached":
        return STATE_RESTORED, None
    return STATE_RESTORING, "state %s, restoreRequired %s" % (status.get("state") or "none", status.get("restoreRequired"))
