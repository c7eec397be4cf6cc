# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Restoring Longhorn volumes from backups: which backup, the Volume body, and how a restore ends (ref §1.3-§1.5, §4)."""

from __future__ import annotations

import hashlib
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
# On a volume that retries a failed restore: the name the restore was planned under, and the attempt number.
RETRY_OF_ANNOTATION = "longhorn-dr.homelab/retry-of"
RETRY_ANNOTATION = "longhorn-dr.homelab/retry"
# lm@v1.10.2:datastore/longhorn.go NameMaximumLength (ref §1): CheckVolume refuses a longer volume name (and one that is
# not a DNS-1123 label).
MAX_VOLUME_NAME = 40
# lm@v1.10.2:k8s/pkg/apis/longhorn/v1beta2/volumeattachment.go AttacherTypeVolumeRestoreController.
RESTORE_ATTACHER = "volume-restore-controller"
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
                stale_replica_timeout=DEFAULT_STALE_REPLICA_TIMEOUT, retry_of=None, retry=None):
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
    annotations = {RESTORED_FROM_ANNOTATION: url}
    if retry_of:
        annotations.update({RETRY_OF_ANNOTATION: retry_of, RETRY_ANNOTATION: str(retry)})
    return {
        "apiVersion": API_VERSION,
        "kind": "Volume",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
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


# ---- retrying a failed restore -----------------------------------------------------------------

def retry_volume_name(target, attempt):
    """The volume the ``attempt``-th retry of ``target`` restores into: ``<target>-retry-<n>``, at most 40 characters.

    A name too long for that (``pvc-<uuid>`` already has 40) keeps its start and gets 8 hex characters of its
    SHA-256, so two long names with the same start still get different retry names.
    """
    suffix = "-retry-%d" % attempt
    if len(target) + len(suffix) <= MAX_VOLUME_NAME:
        return target + suffix
    digest = hashlib.sha256(target.encode("utf-8")).hexdigest()[:8]
    keep = MAX_VOLUME_NAME - len(suffix) - len(digest) - 1
    return "%s-%s%s" % (target[:keep].rstrip("-._"), digest, suffix)


def retry_attempt(volume, target):
    """The attempt number when ``volume`` is a retry of ``target`` made by this collection, else None."""
    annotations = volume["metadata"].get("annotations") or {}
    if annotations.get(RETRY_OF_ANNOTATION) != target:
        return None
    try:
        attempt = int(annotations.get(RETRY_ANNOTATION) or "")
    except ValueError:
        return None
    if attempt < 1 or volume["metadata"]["name"] != retry_volume_name(target, attempt):
        return None
    return attempt


def restore_family(volumes, target):
    """{attempt: volume} of ``target`` (attempt 0) and every retry of it that exists."""
    family = {}
    if target in volumes:
        family[0] = volumes[target]
    for volume in volumes.values():
        attempt = retry_attempt(volume, target)
        if attempt is not None:
            family[attempt] = volume
    return family


def delete_command(name, namespace):
    """The one command that removes a kept volume (Longhorn deletes its replicas and data with the CR)."""
    return "kubectl -n %s delete volumes.longhorn.io %s" % (namespace, name)


def _after(value, moment):
    stamp = parse_time(value) if value else None
    return stamp is not None and moment is not None and stamp > moment


def untouched_refusals(volume, backup_url, backup, pvs, attachment, snapshots):
    """Why ``volume`` cannot be proven untouched since its restore failed; [] when every check holds.

    ``pvs``: every PersistentVolume; ``attachment``: the volume's longhorn.io VolumeAttachment (None when absent);
    ``snapshots``: the volume's Snapshot CRs. Each check is documented in docs/disaster-recovery.md.
    """
    name = volume["metadata"]["name"]
    status = volume.get("status") or {}
    annotations = volume["metadata"].get("annotations") or {}
    reasons = []
    if annotations.get(RESTORED_FROM_ANNOTATION) != backup_url or not backup_url:
        reasons.append("it was not created by this collection from backup URL %s (annotation %s is %r)"
                       % (backup_url, RESTORED_FROM_ANNOTATION, annotations.get(RESTORED_FROM_ANNOTATION)))
    if volume["metadata"].get("deletionTimestamp"):
        return reasons  # already being deleted: nothing left to protect by refusing
    # Longhorn never attaches a faulted volume and never auto-salvages one that still needs its restore
    # (lm@v1.10.2:controller/volume_controller.go ReconcileVolumeState); a salvage clears RestoreFailure
    # (closeVolumeDependentResources). So still faulted with RestoreFailure means no one has used it since.
    condition = restore_condition(volume)
    if status.get("robustness") != "faulted" or condition.get("reason") != "RestoreFailure":
        reasons.append("it is no longer in the failed-restore state (robustness %s, Restore condition reason %r): it may have been salvaged"
                       % (status.get("robustness") or "unknown", condition.get("reason") or ""))
    if status.get("restoreRequired") is not True:
        reasons.append("restoreRequired is %s, not true" % status.get("restoreRequired"))
    if status.get("state") != "detached" or status.get("currentNodeID"):
        reasons.append("it is %s%s, not detached" % (status.get("state") or "in an unknown state",
                                                     " on node %s" % status["currentNodeID"] if status.get("currentNodeID") else ""))
    for field in ("remountRequestedAt", "lastAutoSalvagedAt"):
        if status.get(field):
            reasons.append("status.%s is %s: it was salvaged or remounted" % (field, status[field]))
    # Every party that attaches a volume adds a ticket (lm@v1.10.2:controller/volume_attachment_controller.go);
    # only the restore's own may be there (controller/volume_restore_controller.go reconcile).
    if attachment is None:
        reasons.append("its VolumeAttachment %s cannot be read, so its attachments are unknown" % name)
    else:
        others = sorted("%s (%s)" % (ticket_id, (ticket or {}).get("type"))
                        for ticket_id, ticket in ((attachment.get("spec") or {}).get("attachmentTickets") or {}).items()
                        if (ticket or {}).get("type") != RESTORE_ATTACHER)
        if others:
            reasons.append("it has attachment tickets besides the restore's: %s" % ", ".join(others))
    using = sorted(pv["metadata"]["name"] for pv in pvs
                   if ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle") == name)
    kube = status.get("kubernetesStatus") or {}
    if using or kube.get("pvName"):
        reasons.append("PV %s uses it" % ", ".join(using or [kube.get("pvName")]))
    # The restore copies kubernetesStatus from the backup with the backup's snapshot time (checkAndInitVolumeRestore);
    # a PV or a pod using the volume later stamps the time it went away (controller/kubernetes_pv_controller.go).
    created = parse_time(volume["metadata"].get("creationTimestamp"))
    if created is None:
        reasons.append("its creationTimestamp is unknown")
    for field in ("lastPVCRefAt", "lastPodRefAt"):
        if _after(kube.get(field), created):
            reasons.append("kubernetesStatus.%s is %s, after the volume was created: a claim or pod used it" % (field, kube[field]))
    user_snapshots = sorted(s["metadata"]["name"] for s in snapshots
                            if (s.get("status") or {}).get("userCreated") or (s.get("spec") or {}).get("createSnapshot"))
    if user_snapshots:
        reasons.append("it has snapshots someone took: %s" % ", ".join(user_snapshots))
    # checkAndInitVolumeRestore sets actualSize to the backup's size; a partial restore stays below it.
    try:
        limit = int(str(((backup or {}).get("status") or {}).get("size") or ""))
    except ValueError:
        limit = None
    size = status.get("actualSize")
    if limit is None:
        reasons.append("the size of the backup it was restored from is unknown")
    elif not isinstance(size, int):
        reasons.append("its actualSize is unknown (%r)" % (size,))
    elif size > limit:
        reasons.append("its actualSize %d is more than the backup's %d bytes: data was written" % (size, limit))
    return reasons


def failed_restore(volume):
    """True when Longhorn reports this volume's restore as failed (ref §1.5 step 3)."""
    return restore_outcome(volume)[0] == STATE_FAILED
