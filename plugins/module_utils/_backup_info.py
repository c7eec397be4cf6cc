# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Pure logic of longhorn_backup_info: the cluster's backup view built from lists of API objects.

Nothing here talks to the cluster. ``build_view`` takes the Settings, the BackupTarget, and the
Volume, Backup and SystemBackup lists as plain dicts, plus ``now``, so ages are reproducible.
"""

from __future__ import annotations

import datetime

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backup_target import (
    SETTING_POLL,
    SETTING_SECRET,
    SETTING_URL,
    VERSION_SETTING,
    parse_time,
    unavailable_message,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    DEFAULT_BACKUP_TARGET,
    InvalidValue,
    parse_duration,
    uses_backup_target_settings,
)

# ref §1.3: plain label keys, no longhorn.io/ prefix.
LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
# ref §1.7: SystemBackups synced from the store carry their version as a label.
LABEL_SYSTEM_BACKUP_VERSION = "longhorn.io/version"
# ref §1.9: recurring-job membership labels on volumes.
RECURRING_JOB_PREFIX = "recurring-job.longhorn.io/"
RECURRING_JOB_GROUP_PREFIX = "recurring-job-group.longhorn.io/"
LABEL_VALUE_ENABLED = "enabled"
DEFAULT_GROUP = "default"

BACKUP_COMPLETED = "Completed"
SYSTEM_BACKUP_READY = "Ready"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


# --- small conversions -------------------------------------------------------------------------------

def iso(moment):
    """An aware datetime as ``2026-01-02T03:04:05Z`` (whole seconds, UTC), None stays None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_seconds(moment, now):
    """Whole seconds from ``moment`` to ``now`` (negative when the cluster clock is ahead), or None."""
    if moment is None:
        return None
    return int((now - moment).total_seconds())


def to_int(value):
    """Longhorn's int64-as-string fields (``size``, ``volumeSize``) as int; None for absent or unparsable values."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def or_none(value):
    """Longhorn writes ``""`` for unset strings; the view says null."""
    return value if value not in (None, "") else None


def settings_values(settings):
    """``{name: value}`` from a list of Setting CRs (the value is a top-level field of the CR)."""
    return {item["metadata"]["name"]: item.get("value") for item in settings or [] if (item.get("metadata") or {}).get("name")}


# --- backups -----------------------------------------------------------------------------------------

def backup_time(backup):
    """When a backup was taken: ``status.backupCreatedAt`` (upload finished), else ``status.snapshotCreatedAt``,
    else ``metadata.creationTimestamp`` (an Error or in-progress backup has no upload time; ref §1.3)."""
    status = backup.get("status") or {}
    metadata = backup.get("metadata") or {}
    for value in (status.get("backupCreatedAt"), status.get("snapshotCreatedAt"), metadata.get("creationTimestamp")):
        moment = parse_time(value)
        if moment is not None:
            return moment
    return None


def _newest_first_key(item, when):
    """Sort key, newest first when sorted with reverse=True: the time, then creationTimestamp, then the name."""
    metadata = item.get("metadata") or {}
    created = parse_time(metadata.get("creationTimestamp")) or _EPOCH
    return (when or _EPOCH, created, metadata.get("name") or "")


def backup_volume_name(backup):
    """The volume a Backup CR belongs to.

    ref §1.3: the ``backup-volume`` label (the volume name) is set by the webhook on every Backup created in the
    cluster, and the BackupVolume controller sets it on the CRs it pulls from the store (it passes
    ``backupVolume.Spec.VolumeName`` to ``ds.CreateBackup``, which tags the label; derived from code).
    ``status.volumeName`` is filled only when the backup completes or is synced, so an Error backup may lack it.
    The label first, the status as fallback.
    """
    labels = (backup.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_BACKUP_VOLUME) or (backup.get("status") or {}).get("volumeName") or None


def backup_target_name(backup):
    """The BackupTarget of a Backup CR (label ``backup-target``, else ``status.backupTargetName``); None before v1.8."""
    labels = (backup.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_BACKUP_TARGET) or (backup.get("status") or {}).get("backupTargetName") or None


def backup_entry(backup, now):
    """One Backup CR in the shape of ``last_backup``."""
    status = backup.get("status") or {}
    when = backup_time(backup)
    return {
        "name": backup["metadata"]["name"],
        "state": status.get("state") or "",
        "created_at": iso(when),
        "age_seconds": age_seconds(when, now),
        "url": or_none(status.get("url")),
        "size": to_int(status.get("size")),
        "error": or_none(status.get("error")),
        "snapshot_created_at": iso(parse_time(status.get("snapshotCreatedAt"))),
        "backup_target": backup_target_name(backup),
    }


def backups_by_volume(backups, target_name=DEFAULT_BACKUP_TARGET):
    """``{volume: [Backup CRs, newest first]}`` for the backups on ``target_name``.

    Backups without a target (Longhorn <= 1.7 has only the default target and no ``backup-target`` label) count
    for every target name; backups on another target are left out.
    """
    grouped = {}
    for backup in backups or []:
        volume = backup_volume_name(backup)
        if not volume:
            continue
        target = backup_target_name(backup)
        if target is not None and target != target_name:
            continue
        grouped.setdefault(volume, []).append(backup)
    for items in grouped.values():
        items.sort(key=lambda b: _newest_first_key(b, backup_time(b)), reverse=True)
    return grouped


# --- recurring jobs ----------------------------------------------------------------------------------

def recurring_membership(labels):
    """``(jobs, groups, implicit_default)`` from a volume's labels (ref §1.9).

    A job or group counts when its label value is ``enabled``. Longhorn labels a volume
    ``recurring-job-group.longhorn.io/default: enabled`` itself when **no** label key starts with
    ``recurring-job.longhorn.io/`` or ``recurring-job-group.longhorn.io/``, whatever the value
    (lm@v1.10.2:datastore/longhorn.go ``FixupRecurringJob`` -> ``tagRecurringJobDefaultLabel``; ref §1.9 says
    "no job labels", but group labels count too). A volume the manager has not fixed up yet is reported in the
    ``default`` group as well, with ``implicit_default`` True.
    """
    labels = labels or {}
    jobs, groups = set(), set()
    any_job_label = False
    for key, value in labels.items():
        if key.startswith(RECURRING_JOB_GROUP_PREFIX):
            any_job_label = True
            if value == LABEL_VALUE_ENABLED:
                groups.add(key[len(RECURRING_JOB_GROUP_PREFIX):])
        elif key.startswith(RECURRING_JOB_PREFIX):
            any_job_label = True
            if value == LABEL_VALUE_ENABLED:
                jobs.add(key[len(RECURRING_JOB_PREFIX):])
    if not any_job_label:
        return [], [DEFAULT_GROUP], True
    return sorted(jobs), sorted(groups), False


# --- volumes -----------------------------------------------------------------------------------------

def select_volumes(volumes, names=None):
    """Volumes sorted by name, only ``names`` when given; raises LonghornError naming the unknown ones."""
    by_name = {v["metadata"]["name"]: v for v in volumes or []}
    if names is None:
        return [by_name[name] for name in sorted(by_name)]
    missing = sorted({name for name in names if name not in by_name})
    if missing:
        raise LonghornError("volumes: No Longhorn volume named %s (known: %s)" % (
            ", ".join(missing), ", ".join(sorted(by_name)[:20]) or "none"), unknown_volumes=missing)
    return [by_name[name] for name in sorted(set(names))]


def volume_entry(volume, backups, now):
    """One volume of the view; ``backups`` are its Backup CRs newest first (see ``backups_by_volume``)."""
    metadata = volume.get("metadata") or {}
    spec = volume.get("spec") or {}
    status = volume.get("status") or {}
    kstatus = status.get("kubernetesStatus") or {}
    jobs, groups, implicit = recurring_membership(metadata.get("labels"))
    completed = [b for b in backups if (b.get("status") or {}).get("state") == BACKUP_COMPLETED]
    return {
        "name": metadata["name"],
        "size": to_int(spec.get("size")),
        "state": status.get("state") or "",
        "robustness": status.get("robustness") or "",
        # ref §1.5: what the data occupies; the gate uses it to tell an unclaimed volume holding data from an empty one.
        "actual_size": to_int(status.get("actualSize")),
        "access_mode": spec.get("accessMode") or "rwo",
        "data_engine": spec.get("dataEngine") or "v1",
        "backup_target": spec.get("backupTargetName") or DEFAULT_BACKUP_TARGET,
        # ref §1.5: kubernetesStatus keeps namespace/pvcName after the PVC is gone; lastPVCRefAt says when it went.
        "pvc_namespace": or_none(kstatus.get("namespace")),
        "pvc_name": or_none(kstatus.get("pvcName")),
        "pv_name": or_none(kstatus.get("pvName")),
        "pv_status": or_none(kstatus.get("pvStatus")),
        "last_pvc_ref_at": iso(parse_time(kstatus.get("lastPVCRefAt"))),
        "last_backup": backup_entry(backups[0], now) if backups else None,
        "last_completed_backup": backup_entry(completed[0], now) if completed else None,
        "backup_count": len(completed),
        "recurring_jobs": jobs,
        "recurring_job_groups": groups,
        "recurring_job_default_implicit": implicit,
    }


# --- system backups ----------------------------------------------------------------------------------

def system_backup_time(system_backup):
    """``status.createdAt`` (set when the upload completes, ref §1.7), else ``metadata.creationTimestamp``."""
    status = system_backup.get("status") or {}
    metadata = system_backup.get("metadata") or {}
    return parse_time(status.get("createdAt")) or parse_time(metadata.get("creationTimestamp"))


def system_backup_error(system_backup):
    """The message of a True ``Error`` condition (ref §1.7), else None."""
    for condition in (system_backup.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Error" and str(condition.get("status")) == "True":
            return condition.get("message") or condition.get("reason") or "Error"
    return None


def system_backup_entry(system_backup, now):
    metadata = system_backup.get("metadata") or {}
    status = system_backup.get("status") or {}
    when = system_backup_time(system_backup)
    return {
        "name": metadata["name"],
        "state": status.get("state") or "",
        "created_at": iso(when),
        "age_seconds": age_seconds(when, now),
        "version": or_none(status.get("version")) or or_none((metadata.get("labels") or {}).get(LABEL_SYSTEM_BACKUP_VERSION)),
        "volume_backup_policy": or_none((system_backup.get("spec") or {}).get("volumeBackupPolicy")),
        "error": system_backup_error(system_backup),
    }


def system_backups_view(system_backups, now):
    """``(entries newest first, newest Ready entry or None)``."""
    ordered = sorted(system_backups or [], key=lambda s: _newest_first_key(s, system_backup_time(s)), reverse=True)
    entries = [system_backup_entry(item, now) for item in ordered]
    ready = next((entry for entry in entries if entry["state"] == SYSTEM_BACKUP_READY), None)
    return entries, ready


# --- backup target -----------------------------------------------------------------------------------

def poll_seconds(value):
    """A poll interval (Go duration or seconds) as int seconds; None when unset or unparsable."""
    if value in (None, ""):
        return None
    try:
        return int(round(parse_duration(value)))
    except InvalidValue:
        return None


def target_entry(name, target, settings, legacy):
    """The BackupTarget as the view shows it.

    ref §1.2: up to v1.7 the URL, credential secret and poll interval live in the ``backup-target*`` Settings
    (the setting controller copies them into BackupTarget ``default``); from v1.8 the CR spec is the truth.
    The status (available, lastSyncedAt, the ``Unavailable`` condition, ref §1.1) comes from the CR either way.
    """
    spec = (target or {}).get("spec") or {}
    status = (target or {}).get("status") or {}
    if legacy:
        url, secret, poll = settings.get(SETTING_URL), settings.get(SETTING_SECRET), settings.get(SETTING_POLL)
    else:
        url, secret, poll = spec.get("backupTargetURL"), spec.get("credentialSecret"), spec.get("pollInterval")
    available = status.get("available") is True
    message = None
    if not available:
        if target is None:
            message = "BackupTarget %s does not exist" % name
        else:
            message = unavailable_message(target) or None
    return {
        "name": name,
        "url": or_none(url),
        "credential_secret": or_none(secret),
        "poll_interval": poll_seconds(poll),
        "available": available,
        "last_synced_at": iso(parse_time(status.get("lastSyncedAt"))),
        "message": message,
    }


def check_target_name(target_name, target, version, legacy):
    """Raise LonghornError when the named target cannot exist or is missing (the default one may be missing on <= 1.7)."""
    if legacy and target_name != DEFAULT_BACKUP_TARGET:
        raise LonghornError("Longhorn %s has only the default backup target (named targets need 1.8 or later); got backup_target %r"
                            % (version, target_name))
    if target is None and not legacy:
        raise LonghornError("backup_target: No BackupTarget named %s" % target_name, unknown_backup_target=target_name)


def is_legacy(version):
    """Longhorn <= 1.7 keeps the backup target in Settings (ref §1.2); no version Setting means a current Longhorn."""
    return bool(version) and uses_backup_target_settings(version)


# --- the whole view ----------------------------------------------------------------------------------

def build_view(settings, target, volumes, backups, system_backups, now, names=None, target_name=DEFAULT_BACKUP_TARGET):
    """The module's result (without ``changed``) from the objects read, ``settings`` as ``{name: value}``.

    Raises LonghornError for an unknown volume name or backup target.
    """
    version = or_none(settings.get(VERSION_SETTING))
    legacy = is_legacy(version)
    check_target_name(target_name, target, version, legacy)
    selected = select_volumes(volumes, names)
    grouped = backups_by_volume(backups, target_name)
    cluster_volumes = {v["metadata"]["name"] for v in volumes or []}
    entries, last_ready = system_backups_view(system_backups, now)
    return {
        "longhorn_version": version,
        "legacy_settings": legacy,
        "checked_at": iso(now),
        "backup_target": target_entry(target_name, target, settings, legacy),
        "volumes": [volume_entry(v, grouped.get(v["metadata"]["name"], []), now) for v in selected],
        "backup_volumes_not_in_cluster": sorted(set(grouped) - cluster_volumes),
        "system_backups": entries,
        "last_ready_system_backup": last_ready,
    }
