# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Longhorn SystemBackup CRs: bodies, predicates and error texts (ref §1.7)."""

from __future__ import annotations

import datetime

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_BACKUP_TARGET,
    DELETE_CR_ONLY_LABEL,
)

KIND = "SystemBackup"
STATE_READY = "Ready"
STATE_ERROR = "Error"
VOLUME_BACKUP_POLICIES = ("if-not-present", "always", "disabled")


def generated_name(now=None):
    """``system-backup-<UTC time>``: sortable and valid per the manager's name regex (ref §1)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "system-backup-%s" % now.strftime("%Y%m%d-%H%M%S")


def system_backup_body(name, namespace, volume_backup_policy):
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"volumeBackupPolicy": volume_backup_policy},
    }


def error_messages(system_backup):
    """Messages of the Error conditions (ref §1.7: type Error, reasons Generate/Upload/Sync/Delete)."""
    conditions = ((system_backup or {}).get("status") or {}).get("conditions") or []
    return ["%s: %s" % (c.get("reason") or "Error", c.get("message") or "") for c in conditions
            if c.get("type") == STATE_ERROR and c.get("status", "True") == "True"]


def settled(system_backup):
    """wait_for predicate: Ready, or Error raised as LonghornError with the condition messages."""
    state = (system_backup.get("status") or {}).get("state")
    if state == STATE_ERROR:
        name = system_backup["metadata"]["name"]
        messages = error_messages(system_backup) or ["no Error condition recorded"]
        raise LonghornError("SystemBackup %s failed: %s" % (name, "; ".join(messages)), result=system_backup)
    return state == STATE_READY


def default_target_problem(target):
    """Why Longhorn refuses a SystemBackup now (ref §1.7 validator), or None."""
    if target is None:
        return "BackupTarget %s does not exist" % DEFAULT_BACKUP_TARGET
    status = target.get("status") or {}
    if status.get("available"):
        return None
    messages = [c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Unavailable" and c.get("message")]
    return "BackupTarget %s is not available%s" % (DEFAULT_BACKUP_TARGET, (": " + "; ".join(messages)) if messages else "")


def keeps_remote(system_backup):
    return DELETE_CR_ONLY_LABEL in ((system_backup or {}).get("metadata", {}).get("labels") or {})


def managed_fields(system_backup):
    """The fields the diff shows."""
    if system_backup is None:
        return {}
    return {
        "name": system_backup["metadata"]["name"],
        "volume_backup_policy": (system_backup.get("spec") or {}).get("volumeBackupPolicy") or "",
        "keep_remote": keeps_remote(system_backup),
    }


# ---- SystemRestore (ref §1.8, §2) ------------------------------------------------------------

RESTORE_KIND = "SystemRestore"
RESTORE_COMPLETED = "Completed"
RESTORE_ERROR = "Error"
RESTORE_IN_PROGRESS_LABEL = "longhorn.io/system-restore"
ROLLOUT_JOB_PREFIX = "longhorn-system-rollout-"
NAME_LIMIT = 63


def created_at(system_backup):
    """When the backup was uploaded (status.createdAt), else when its CR was made."""
    return (system_backup.get("status") or {}).get("createdAt") or system_backup["metadata"].get("creationTimestamp") or ""


def latest_ready(system_backups):
    """The newest Ready SystemBackup, or None. RFC 3339 UTC times sort as strings."""
    ready = [b for b in system_backups if (b.get("status") or {}).get("state") == STATE_READY]
    return max(ready, key=lambda b: (created_at(b), b["metadata"]["name"])) if ready else None


def describe_backups(system_backups):
    return ", ".join("%s (%s)" % (b["metadata"]["name"], (b.get("status") or {}).get("state") or "no state")
                     for b in sorted(system_backups, key=lambda b: b["metadata"]["name"])) or "none"


def default_restore_name(backup_name):
    """``restore-<backup>``, cut to a valid object name."""
    return ("restore-%s" % backup_name)[:NAME_LIMIT].rstrip("-.")


def rollout_job_name(restore_name):
    """The Job that runs the restore; its logs tell why a restore failed (ref §1.8)."""
    return ROLLOUT_JOB_PREFIX + restore_name


def restore_body(name, namespace, backup_name):
    return {
        "apiVersion": API_VERSION,
        "kind": RESTORE_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"systemBackup": backup_name},
    }


def not_detached(volumes):
    """ref §1.8: Longhorn refuses a SystemRestore while any volume is not detached; name each with its PVC."""
    found = []
    for volume in sorted(volumes, key=lambda v: v["metadata"]["name"]):
        status = volume.get("status") or {}
        state = status.get("state") or "unknown"
        if state == "detached":
            continue
        claim = status.get("kubernetesStatus") or {}
        where = " for PVC %s/%s" % (claim.get("namespace"), claim.get("pvcName")) if claim.get("pvcName") else ""
        found.append("%s (%s%s)" % (volume["metadata"]["name"], state, where))
    return found


def restore_in_progress(restore):
    status = restore.get("status") or {}
    labels = restore.get("metadata", {}).get("labels") or {}
    return labels.get(RESTORE_IN_PROGRESS_LABEL) == "InProgress" or status.get("state") not in (RESTORE_COMPLETED, RESTORE_ERROR)


def restore_settled(restore):
    """wait_for predicate: Completed, or Error raised with the condition messages and the rollout Job's name."""
    state = (restore.get("status") or {}).get("state")
    if state == RESTORE_ERROR:
        name = restore["metadata"]["name"]
        messages = error_messages(restore) or ["no Error condition recorded"]
        raise LonghornError("SystemRestore %s failed: %s; the logs are in Job %s (kubectl -n %s logs job/%s). "
                            "To retry, delete the SystemRestore and run again"
                            % (name, "; ".join(messages), rollout_job_name(name), restore["metadata"].get("namespace"),
                               rollout_job_name(name)),
                            result=restore, rollout_job=rollout_job_name(name))
    return state == RESTORE_COMPLETED


def version_warning(backup_version, cluster_version):
    """ref §1.8: Longhorn restores across versions with only a log line; its docs support the same major.minor."""
    def major_minor(version):
        parts = (version or "").lstrip("v").split(".")
        return tuple(parts[:2]) if len(parts) >= 2 else None
    backup_mm, cluster_mm = major_minor(backup_version), major_minor(cluster_version)
    if backup_mm and cluster_mm and backup_mm != cluster_mm:
        return ("SystemBackup was taken by Longhorn %s but the cluster runs %s; Longhorn supports restoring only within "
                "the same major.minor version" % (backup_version, cluster_version))
    return None
