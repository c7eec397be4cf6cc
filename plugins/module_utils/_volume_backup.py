# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""On-demand volume backups over Longhorn CRs: selection, CR bodies, batch progress and the result."""

from __future__ import annotations

import json
import uuid

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError, WaitTimeout, known_names
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import API_VERSION, DEFAULT_BACKUP_TARGET, parse_rfc3339

KUBERNETES_STATUS_LABEL = "KubernetesStatus"
LABEL_BACKUP_VOLUME = "backup-volume"
SNAPSHOT_VOLUME_LABEL = "longhornvolume"
# ref §1.3: Completed, Error, Unknown and Deleting are final.
BACKUP_FINAL_STATES = ("Completed", "Error", "Unknown", "Deleting")
# ref §1.5: the Go struct's field order, which json.Marshal keeps.
_KUBERNETES_STATUS_FIELDS = ("pvName", "pvStatus", "namespace", "pvcName", "lastPVCRefAt", "workloadsStatus", "lastPodRefAt")
_WORKLOAD_STATUS_FIELDS = ("podName", "podStatus", "workloadName", "workloadType")


def generated_name(prefix):
    """``<prefix>-<16 hex>``, the form of Longhorn's bsutil.GenerateName (ref §1.3)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def kubernetes_status_label(volume):
    """JSON of ``status.kubernetesStatus`` as Longhorn's REST snapshotBackup marshals it (ref §1.3, §1.5)."""
    kstatus = (volume.get("status") or {}).get("kubernetesStatus") or {}
    ordered = {}
    for field in _KUBERNETES_STATUS_FIELDS:
        if field == "workloadsStatus":
            workloads = kstatus.get(field)
            ordered[field] = None if workloads is None else [
                {key: (item or {}).get(key) or "" for key in _WORKLOAD_STATUS_FIELDS} for item in workloads]
        else:
            ordered[field] = kstatus.get(field) or ""
    return json.dumps(ordered, separators=(",", ":"))


def parse_time(value):
    """An RFC 3339 timestamp as an aware datetime, or None."""
    return parse_rfc3339(value)


def select_volumes(volumes, names=None):
    """The volumes to back up, in the order asked; raises LonghornError naming volumes that do not exist."""
    by_name = {v["metadata"]["name"]: v for v in volumes}
    if names is None:
        return [by_name[name] for name in sorted(by_name)]
    missing = [name for name in names if name not in by_name]
    if missing:
        raise LonghornError("volumes: No Longhorn volume named %s (known: %s); nothing was backed up"
                            % (", ".join(missing), known_names(by_name)), missing=missing)
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return [by_name[name] for name in seen]


def skip_reason(volume):
    """Why a volume cannot take an on-demand backup now, or None."""
    spec = volume.get("spec") or {}
    status = volume.get("status") or {}
    if spec.get("Standby") or status.get("isStandby"):
        return "standby (DR) volume: Longhorn does not back it up"
    if status.get("restoreRequired"):
        return "volume is still restoring from a backup"
    if status.get("state") in ("creating", "deleting") or volume["metadata"].get("deletionTimestamp"):
        return "volume is %s" % (status.get("state") or "deleting")
    return None


def latest_completed_backups(backups):
    """``{volume: (time, backup)}`` of each volume's newest Completed backup (snapshot time, else upload time)."""
    latest = {}
    for backup in backups:
        status = backup.get("status") or {}
        if status.get("state") != "Completed":
            continue
        volume = status.get("volumeName") or (backup["metadata"].get("labels") or {}).get(LABEL_BACKUP_VOLUME)
        when = parse_time(status.get("snapshotCreatedAt")) or parse_time(status.get("backupCreatedAt"))
        if not volume or when is None:
            continue
        if volume not in latest or when > latest[volume][0]:
            latest[volume] = (when, backup)
    return latest


def target_problem(volume, targets):
    """Why the volume's BackupTarget cannot take a backup, or None (ref §1.1: status.available)."""
    name = (volume.get("spec") or {}).get("backupTargetName") or DEFAULT_BACKUP_TARGET
    target = targets.get(name)
    if target is None:
        return None  # up to v1.7 the target lives in Settings; let Longhorn report problems
    status = target.get("status") or {}
    if status.get("available"):
        return None
    messages = [c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Unavailable" and c.get("message")]
    return "backup target %s is not available%s" % (name, (": " + "; ".join(messages)) if messages else "")


def snapshot_body(name, volume_name, namespace):
    """Snapshot CR that asks Longhorn to take the snapshot (ref §1.6)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Snapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": {SNAPSHOT_VOLUME_LABEL: volume_name}},
        "spec": {"volume": volume_name, "createSnapshot": True, "labels": {}},
    }


def backup_body(name, snapshot_name, volume, namespace, backup_mode, extra_labels=None):
    """Backup CR of a snapshot, labelled like the REST snapshotBackup action (ref §1.3)."""
    labels = dict(extra_labels or {})
    labels[KUBERNETES_STATUS_LABEL] = kubernetes_status_label(volume)
    return {
        "apiVersion": API_VERSION,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"snapshotName": snapshot_name, "backupMode": backup_mode, "labels": labels},
    }


def snapshot_settled(snapshot):
    """wait_for predicate: ready to use.

    ``status.error`` is not final: Longhorn sets it while it attaches a detached volume (ref §1.6).
    """
    return bool((snapshot.get("status") or {}).get("readyToUse"))


def backup_settled(backup):
    """wait_for predicate: the backup reached a final state (ref §1.3)."""
    return (backup.get("status") or {}).get("state") in BACKUP_FINAL_STATES


def backup_result(volume_name, backup_name, snapshot_name, backup, duration):
    """One volume's entry in ``backups``."""
    status = (backup or {}).get("status") or {}
    size = status.get("size")
    try:
        size = int(size) if size not in (None, "") else None
    except (TypeError, ValueError):
        size = None
    return {
        "volume": volume_name,
        "backup": backup_name,
        "snapshot": snapshot_name,
        "url": status.get("url") or "",
        "size": size,
        "duration": round(duration, 3),
        "state": status.get("state") or "",
        "error": status.get("error") or "",
    }


def failure_summary(results):
    """One line naming each failed volume and why; '' when all completed."""
    failed = [r for r in results if r["state"] != "Completed"]
    if not failed:
        return ""
    parts = ["%s (%s%s)" % (r["volume"], r["state"] or "not finished", (": " + r["error"]) if r["error"] else "") for r in failed]
    return "%d of %d volume backups failed: %s" % (len(failed), len(results), "; ".join(parts))


class BatchBackup:
    """Snapshot then backup a chunk of volumes at a time, polling each chunk with one list per round."""

    def __init__(self, access, namespace, backup_mode, labels=None, timeout=3600, sleep=2, clock=None):
        self.access = access
        self.namespace = namespace
        self.backup_mode = backup_mode
        self.labels = labels or {}
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock

    def _remaining(self, deadline):
        return max(0, deadline - self.clock())

    def run(self, volumes, concurrency, wait=True):
        """Returns one result per volume; failures are results, not exceptions."""
        deadline = self.clock() + self.timeout
        results = []
        for start in range(0, len(volumes), max(1, concurrency)):
            chunk = volumes[start:start + max(1, concurrency)]
            if wait and self._remaining(deadline) <= 0:
                results.extend(backup_result(v["metadata"]["name"], "", "", {"status": {"error": "not started: wait_timeout ran out"}}, 0)
                               for v in chunk)
                continue
            results.extend(self._run_chunk(chunk, deadline, wait))
        return results

    def _run_chunk(self, chunk, deadline, wait):
        started = {}
        plan = []
        for volume in chunk:
            volume_name = volume["metadata"]["name"]
            snapshot_name = generated_name("snapshot")
            self.access.create("Snapshot", API_VERSION, snapshot_body(snapshot_name, volume_name, self.namespace), namespace=self.namespace)
            started[volume_name] = self.clock()
            plan.append((volume, snapshot_name, generated_name("backup")))
        errors = {}
        if wait:
            snapshots = self._wait({p[1] for p in plan}, "Snapshot", snapshot_settled, deadline)
            for volume, snapshot_name, _backup in plan:
                status = (snapshots.get(snapshot_name) or {}).get("status") or {}
                if not status.get("readyToUse"):
                    errors[volume["metadata"]["name"]] = "snapshot %s not ready before wait_timeout%s" % (
                        snapshot_name, (" (last error: %s)" % status["error"]) if status.get("error") else "")
        for volume, snapshot_name, backup_name in plan:
            if volume["metadata"]["name"] not in errors:
                self.access.create("Backup", API_VERSION, backup_body(backup_name, snapshot_name, volume, self.namespace, self.backup_mode, self.labels),
                                   namespace=self.namespace)
        backups = {}
        names = {p[2] for p in plan if p[0]["metadata"]["name"] not in errors}
        if wait and names:
            backups = self._wait(names, "Backup", backup_settled, deadline)
        results = []
        for volume, snapshot_name, backup_name in plan:
            volume_name = volume["metadata"]["name"]
            if volume_name in errors:
                results.append(backup_result(volume_name, "", snapshot_name, {"status": {"state": "Error", "error": errors[volume_name]}},
                                             self.clock() - started[volume_name]))
                continue
            backup = backups.get(backup_name)
            if wait and not backup_settled(backup or {}):
                last = ((backup or {}).get("status") or {}).get("state") or "not started"
                backup = {"status": dict((backup or {}).get("status") or {}, error="timed out waiting for Completed (last state: %s)" % last)}
            elif not wait:
                backup = {"status": {"state": "Created"}}
            results.append(backup_result(volume_name, backup_name, snapshot_name, backup, self.clock() - started[volume_name]))
        return results

    def _wait(self, names, kind, predicate, deadline):
        """Objects by name; on timeout, those seen last (the pending ones stay unsettled)."""
        try:
            return self.access.wait_for(kind, API_VERSION, names, predicate, namespace=self.namespace,
                                        timeout=self._remaining(deadline), sleep=self.sleep)
        except WaitTimeout:
            # wait_for drops the settled ones on timeout: one more list gives every object's last state.
            return {obj["metadata"]["name"]: obj for obj in self.access.list(kind, API_VERSION, namespace=self.namespace)
                    if obj["metadata"]["name"] in names}
