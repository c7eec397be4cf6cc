#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: longhorn_volume_restore
short_description: Restore Longhorn volumes from their backups
version_added: 1.0.0
description:
  - Creates a Longhorn C(Volume) from a backup for each chosen volume, under the volume's original name, and waits
    until the restore is done (C(restoreRequired=false) and C(detached)).
  - Choose named volumes, every volume in the backup target, or the volumes whose original PVC lived in given
    namespaces (from the backups' C(KubernetesStatus) label).
  - Each volume gets the exact size recorded in the backup, C(frontend=blockdev), the access mode from the backup's
    C(longhorn.io/volume-access-mode) label, and the replica count and data engine given here.
  - The Backup CRs must be in the cluster, so configure the backup target and let it sync first (for example with
    M(homelab.longhorn_dr.longhorn_backup_target)).
  - A volume that already exists and was restored from the same backup is skipped (recognised by an annotation that
    records the backup URL, or by its C(fromBackup)); one with another origin is a conflict, never overwritten.
  - One volume failing does not stop the others; the module fails at the end with a summary naming each failure.
  - This module creates volumes only. M(homelab.longhorn_dr.longhorn_pv_from_volume) creates their PVs and PVCs.
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.ACTIONGROUP_LONGHORN
attributes:
  check_mode:
    support: full
    details:
      - Each volume is created as a server-side dry run, so Longhorn's webhooks judge the plan; nothing is stored.
  diff_mode:
    support: full
  idempotent:
    support: full
    details:
      - A volume already restored from the chosen backup is skipped.
options:
  volumes:
    description:
      - Original names of the volumes to restore (the volume names in the backup target).
      - Mutually exclusive with O(namespaces) and O(all_volumes).
    type: list
    elements: str
  namespaces:
    description:
      - Restore every volume whose backup names an original PVC in one of these namespaces.
      - Mutually exclusive with O(volumes) and O(all_volumes).
    type: list
    elements: str
  all_volumes:
    description:
      - Restore every volume that has a backup in the backup target.
      - Mutually exclusive with O(volumes) and O(namespaces).
    type: bool
    default: false
  backup:
    description:
      - Name of the backup to restore, instead of the latest C(Completed) one.
      - Only with exactly one volume in O(volumes).
    type: str
  restore_as:
    description:
      - Name of the new volume, instead of the original name. Only with exactly one volume in O(volumes).
      - Restoring a single app while its old volume still exists needs a new name; the old volume is left untouched.
    type: str
  overrides:
    description:
      - Per-volume choices for several volumes at once, keyed by the original volume name; each value may hold
        C(backup) (a backup name instead of the latest), C(restore_as) (a new volume name) and C(number_of_replicas).
      - Every key must be one of the chosen volumes. Not together with O(backup) or O(restore_as).
    type: dict
  recreate_failed:
    description:
      - Longhorn does not retry a failed restore. With this on, a volume that this module (or a system restore) created
        from the chosen backup, whose restore failed (C(faulted) or C(RestoreFailure)) and that no PV uses yet, is
        deleted and restored again. It holds nothing but that failed attempt.
      - Off, such a volume is reported as failed until it is deleted by hand.
    type: bool
    default: true
  backup_target:
    description: Name of the BackupTarget the backups come from.
    type: str
    default: default
  number_of_replicas:
    description: Replicas of each restored volume. Unset, Longhorn's C(default-replica-count) setting applies.
    type: int
  data_engine:
    description: Data engine of the restored volumes.
    type: str
    choices: [v1, v2]
    default: v1
  stale_replica_timeout:
    description: Minutes before a failed replica is cleaned up; Longhorn's own default.
    type: int
    default: 2880
  concurrency:
    description: Volumes restoring at the same time.
    type: int
    default: 5
  namespace:
    description: Namespace of the Longhorn custom resources.
    type: str
    default: longhorn-system
  wait:
    description: Wait until every volume is restored. Without waiting, concurrency is not bounded.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for all volumes together.
    type: int
    default: 3600
  wait_sleep:
    description: Seconds between polls.
    type: int
    default: 5
seealso:
  - name: Longhorn, restore from a backup
    description: Longhorn's documentation of volume restores.
    link: https://longhorn.io/docs/1.10.2/snapshots-and-backups/backup-and-restore/restore-from-a-backup/
  - module: homelab.longhorn_dr.longhorn_pv_from_volume
  - module: homelab.longhorn_dr.longhorn_system_backup
"""

EXAMPLES = r"""
- name: Restore every volume of the apps and db namespaces from their latest backups
  homelab.longhorn_dr.longhorn_volume_restore:
    kubeconfig: ~/.kube/config
    namespaces: [apps, db]
    number_of_replicas: 2
  register: restored

- name: Show the recovery point of each volume
  ansible.builtin.debug:
    msg: "{{ restored.volumes | map(attribute='rpo_seconds') }}"

- name: Restore one volume from a named backup
  homelab.longhorn_dr.longhorn_volume_restore:
    kubeconfig: ~/.kube/config
    volumes: [pvc-0123abcd]
    backup: backup-1a2b3c4d5e6f7a8b

- name: Restore two claims of one app beside their old volumes, one from a named backup
  homelab.longhorn_dr.longhorn_volume_restore:
    volumes: [pvc-0123abcd, pvc-4567ef01]
    overrides:
      pvc-0123abcd: {restore_as: data-db-0-r1, number_of_replicas: 2}
      pvc-4567ef01: {restore_as: uploads-r1, backup: backup-1a2b3c4d5e6f7a8b}

- name: Restore everything in the bucket, four at a time
  homelab.longhorn_dr.longhorn_volume_restore:
    all_volumes: true
    concurrency: 4
    wait_timeout: 14400
"""

RETURN = r"""
volumes:
  description: One entry per chosen volume, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    volume:
      description: Name of the restored volume (the original one unless O(restore_as) is set).
      type: str
      sample: pvc-0123abcd
    source_volume:
      description: The original volume name in the backup target.
      type: str
      sample: pvc-0123abcd
    backup:
      description: Backup restored from.
      type: str
      sample: backup-1a2b3c4d5e6f7a8b
    backup_url:
      description: The backup's URL, as recorded on the volume.
      type: str
      sample: s3://longhorn-backups@us-east-1/?backup=backup-1a2b3c4d5e6f7a8b&volume=pvc-0123abcd
    backup_created_at:
      description: When the backup was taken.
      type: str
      sample: "2026-01-01T02:00:05Z"
    rpo_seconds:
      description: Age of the backup when the restore started (the recovery point).
      type: int
      sample: 3600
    size:
      description: Volume size in bytes, from the backup.
      type: int
      sample: 1073741824
    access_mode:
      description: C(rwo) or C(rwx).
      type: str
      sample: rwo
    pvc_namespace:
      description: Namespace of the original PVC, from the backup; null when unknown.
      type: str
      sample: apps
    pvc_name:
      description: Name of the original PVC, from the backup; null when unknown.
      type: str
      sample: app-data
    state:
      description: C(Planned) (check mode), C(Restored), C(AlreadyRestored), C(Restoring) (not waited for) or C(Failed).
      type: str
      sample: Restored
    duration:
      description: Seconds from creation until the restore finished.
      type: float
      sample: 52.3
    error:
      description: Why the volume failed; null otherwise.
      type: str
      sample: null
failed_volumes:
  description: Names of the volumes that failed.
  returned: always
  type: list
  elements: str
  sample: []
duration:
  description: Seconds the module ran.
  returned: always
  type: float
  sample: 120.5
"""

import time

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    auth_argument_spec,
    new_module,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_BACKUP_TARGET,
    DEFAULT_NAMESPACE,
    backup_url_parts,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_restore import (
    LABEL_BACKUP_TARGET,
    STATE_ALREADY_RESTORED,
    STATE_FAILED,
    STATE_PLANNED,
    STATE_RESTORED,
    STATE_RESTORING,
    access_mode,
    backup_time,
    kubernetes_status,
    original_volume_name,
    parse_time,
    pick_backup,
    restore_outcome,
    restored_from,
    volume_body,
    volume_size,
)


def argument_spec():
    return auth_argument_spec(
        volumes=dict(type="list", elements="str"),
        namespaces=dict(type="list", elements="str"),
        all_volumes=dict(type="bool", default=False),
        backup=dict(type="str"),
        restore_as=dict(type="str"),
        overrides=dict(type="dict"),
        recreate_failed=dict(type="bool", default=True),
        backup_target=dict(type="str", default=DEFAULT_BACKUP_TARGET),
        number_of_replicas=dict(type="int"),
        data_engine=dict(type="str", choices=["v1", "v2"], default="v1"),
        stale_replica_timeout=dict(type="int", default=2880),
        concurrency=dict(type="int", default=5),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        wait_sleep=dict(type="int", default=5),
    )


def check_params(params):
    selectors = [bool(params["volumes"]), bool(params["namespaces"]), params["all_volumes"]]
    if sum(selectors) != 1:
        raise LonghornError("Choose the volumes with exactly one of volumes, namespaces or all_volumes=true")
    overrides = params.get("overrides") or {}
    if overrides and (params["backup"] or params["restore_as"]):
        raise LonghornError("overrides sets the backup and name per volume; do not combine it with backup or restore_as")
    for volume, choice in sorted(overrides.items()):
        if not isinstance(choice, dict) or set(choice) - OVERRIDE_KEYS:
            raise LonghornError("overrides[%s] must be a dict with only %s, got %r" % (volume, ", ".join(sorted(OVERRIDE_KEYS)), choice))
        replicas = choice.get("number_of_replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 1):
            raise LonghornError("overrides[%s].number_of_replicas must be at least 1, got %r" % (volume, replicas))
    for option in ("backup", "restore_as"):
        if params[option] and len(params["volumes"] or []) != 1:
            raise LonghornError("%s=%s is for one volume, so volumes must list exactly one volume (got %s)"
                                % (option, params[option], ", ".join(params["volumes"] or []) or "none"))
    for option in ("concurrency", "wait_timeout", "wait_sleep"):
        if params[option] < 1:
            raise LonghornError("%s must be at least 1, got %s" % (option, params[option]))
    if params["number_of_replicas"] is not None and params["number_of_replicas"] < 1:
        raise LonghornError("number_of_replicas must be at least 1, got %s" % params["number_of_replicas"])


OVERRIDE_KEYS = {"backup", "restore_as", "number_of_replicas"}


def in_target(obj, target):
    """BackupVolumes and Backups of the chosen target (label backup-target, or spec.backupTargetName from v1.8)."""
    names = {(obj["metadata"].get("labels") or {}).get(LABEL_BACKUP_TARGET), (obj.get("spec") or {}).get("backupTargetName")}
    names.discard(None)
    names.discard("")
    return not names or target in names  # <= 1.7 has a single target and no such label


def choose(params, backup_volumes):
    """{original volume name: BackupVolume or None} for the selection; unknown named volumes map to None."""
    by_volume = {original_volume_name(bv): bv for bv in backup_volumes}
    if params["volumes"]:
        return {name: by_volume.get(name) for name in params["volumes"]}
    if params["namespaces"]:
        wanted = set(params["namespaces"])
        return {name: bv for name, bv in by_volume.items()
                if kubernetes_status((bv.get("status") or {}).get("labels")).get("namespace") in wanted}
    return dict(by_volume)


def new_entry(volume, source, backup, now):
    status = backup.get("status") or {}
    claim = kubernetes_status(status.get("labels"))
    taken = parse_time(backup_time(backup))
    size = volume_size(backup)
    return {
        "volume": volume,
        "source_volume": source,
        "backup": backup["metadata"]["name"],
        "backup_url": status.get("url") or "",
        "backup_created_at": backup_time(backup) or None,
        "rpo_seconds": max(int(now - taken.timestamp()), 0) if taken else None,
        "size": int(size) if size is not None else None,
        "access_mode": access_mode(backup),
        "pvc_namespace": claim.get("namespace") or None,
        "pvc_name": claim.get("pvcName") or None,
        "state": STATE_PLANNED,
        "duration": 0.0,
        "error": None,
    }


def failed_entry(volume, message):
    return {"volume": volume, "source_volume": volume, "backup": None, "backup_url": None, "backup_created_at": None, "rpo_seconds": None, "size": None,
            "access_mode": None, "pvc_namespace": None, "pvc_name": None, "state": STATE_FAILED, "duration": 0.0, "error": message}


def plan(params, access, now):
    """Entries for every chosen volume, and the bodies of the volumes to create (a volume name -> body)."""
    namespace = params["namespace"]
    backup_volumes = [bv for bv in access.list("BackupVolume", API_VERSION, namespace=namespace) if in_target(bv, params["backup_target"])]
    backups = [b for b in access.list("Backup", API_VERSION, namespace=namespace) if in_target(b, params["backup_target"])]
    existing = {v["metadata"]["name"]: v for v in access.list("Volume", API_VERSION, namespace=namespace)}
    entries, bodies = {}, {}
    chosen = choose(params, backup_volumes)
    overrides = params.get("overrides") or {}
    unknown = sorted(set(overrides) - set(chosen))
    if unknown:
        raise LonghornError("overrides name volumes that are not chosen: %s (chosen: %s)" % (", ".join(unknown), ", ".join(sorted(chosen)) or "none"))
    targets = [(overrides.get(name) or {}).get("restore_as") or params["restore_as"] or name for name in chosen]
    clashes = sorted({target for target in targets if targets.count(target) > 1})
    if clashes:
        raise LonghornError("two chosen volumes would be restored under the same name: %s" % ", ".join(clashes))
    for name, backup_volume in sorted(chosen.items()):
        choice = overrides.get(name) or {}
        if backup_volume is None:
            entries[name] = failed_entry(name, "volume %s has no backups in BackupTarget %s (known: %s)" % (
                name, params["backup_target"], ", ".join(sorted(original_volume_name(bv) for bv in backup_volumes)) or "none"))
            continue
        try:
            backup = pick_backup(name, backups, wanted=choice.get("backup") or params["backup"],
                                 last_name=(backup_volume.get("status") or {}).get("lastBackupName"))
        except ValueError as exc:
            entries[name] = failed_entry(name, str(exc))
            continue
        target = choice.get("restore_as") or params["restore_as"] or name
        entry = entries[target] = new_entry(target, name, backup, now)
        volume = existing.get(target)
        if volume is not None:
            origin = restored_from(volume)
            wanted = backup_url_parts(entry["backup_url"])
            if origin != wanted:
                how = "was restored from backup %s" % origin[0] if origin else "was not restored from a backup"
                entry.update(state=STATE_FAILED, error="volume %s already exists and %s; it is never overwritten. Delete it or restore "
                             "under another name (restore_as)" % (target, how))
                continue
            outcome, _message = restore_outcome(volume)
            claimed = ((volume.get("status") or {}).get("kubernetesStatus") or {}).get("pvName")
            if not (outcome == STATE_FAILED and params["recreate_failed"] and not claimed):
                entry["state"] = STATE_ALREADY_RESTORED
                continue
            # Longhorn does not retry a failed restore (ref §1.5 step 3); this volume holds only that failed
            # attempt at the planned backup, so it is deleted and restored again.
            entry["recreated"] = True
        bodies[target] = volume_body(target, namespace, backup, number_of_replicas=choice.get("number_of_replicas") or params["number_of_replicas"],
                                     data_engine=params["data_engine"], stale_replica_timeout=params["stale_replica_timeout"])
    return entries, bodies


def wait_deleted(module, access, name, clock=time.monotonic, sleep=time.sleep):
    deadline = clock() + module.params["wait_timeout"]
    while access.get("Volume", API_VERSION, name, namespace=module.params["namespace"]) is not None:
        if clock() >= deadline:
            raise LonghornError("volume %s, whose restore failed, was not deleted within %ss" % (name, module.params["wait_timeout"]))
        sleep(module.params["wait_sleep"])


def run_restores(module, access, entries, bodies, clock=time.monotonic, sleep=time.sleep):
    """Create the volumes with at most ``concurrency`` restoring at once, waiting for each to finish (ref §1.5)."""
    params = module.params
    namespace = params["namespace"]
    queue = sorted(bodies)
    # Volumes that exist from an earlier, interrupted run are waited for as well.
    active = {name: clock() for name, entry in entries.items() if entry["state"] == STATE_ALREADY_RESTORED}
    deadline = clock() + params["wait_timeout"]
    limit = params["concurrency"] if params["wait"] else len(queue) + 1
    first_round = True
    while queue or active:
        while queue and len(active) < limit:
            name = queue.pop(0)
            try:
                if entries[name].get("recreated"):
                    if module.check_mode:
                        entries[name]["created"] = True
                        continue
                    access.delete("Volume", API_VERSION, name, namespace=namespace)
                    wait_deleted(module, access, name, clock=clock, sleep=sleep)
                access.create("Volume", API_VERSION, bodies[name], namespace=namespace)
            except LonghornError as exc:
                entries[name].update(state=STATE_FAILED, error=str(exc))
                continue
            entries[name]["state"] = STATE_PLANNED if module.check_mode else STATE_RESTORING
            entries[name]["created"] = True
            active[name] = clock()
        if module.check_mode or not params["wait"]:
            return
        if not first_round:
            sleep(params["wait_sleep"])
        first_round = False
        volumes = {v["metadata"]["name"]: v for v in access.list("Volume", API_VERSION, namespace=namespace)}
        for name in sorted(active):
            volume = volumes.get(name)
            if volume is None:
                outcome, message = STATE_FAILED, "volume disappeared while restoring"
            else:
                outcome, message = restore_outcome(volume)
            if outcome == STATE_RESTORING:
                continue
            started = active.pop(name)
            entry = entries[name]
            if outcome == STATE_RESTORED:
                entry["state"] = STATE_RESTORED if entry.get("created") else STATE_ALREADY_RESTORED
            else:
                entry.update(state=STATE_FAILED, error="restore of %s from %s failed: %s" % (name, entry["backup"], message))
            entry["duration"] = round(clock() - started, 3) if entry.get("created") else 0.0
        if active and clock() >= deadline:
            for name in sorted(active):
                volume = volumes.get(name) or {}
                _outcome, message = restore_outcome(volume) if volume else (None, "not found")
                entries[name].update(state=STATE_FAILED, error="timed out after %ss (%s)" % (params["wait_timeout"], message))
            return


def main():
    module = new_module(argument_spec(), supports_check_mode=True)
    started = time.monotonic()
    try:
        check_params(module.params)
        access = K8sAccess(module)
        entries, bodies = plan(module.params, access, time.time())
        run_restores(module, access, entries, bodies)
    except LonghornError as exc:
        module.fail_json(msg=str(exc), duration=round(time.monotonic() - started, 3), **exc.details)
    volumes = [entries[name] for name in sorted(entries)]
    created = [entry.pop("created", False) for entry in volumes]  # from every entry: any() would stop at the first
    for entry in volumes:
        entry.pop("recreated", None)
    changed = any(created)
    result = {"changed": changed, "volumes": volumes, "failed_volumes": [e["volume"] for e in volumes if e["state"] == STATE_FAILED],
              "duration": round(time.monotonic() - started, 3)}
    if module._diff:
        result["diff"] = {"before": {}, "after": {name: bodies[name]["spec"] for name in sorted(bodies)}}
    if result["failed_volumes"]:
        failures = ["%s (%s)" % (e["volume"], e["error"]) for e in volumes if e["state"] == STATE_FAILED]
        module.fail_json(msg="%d of %d volumes failed to restore: %s" % (len(failures), len(volumes), "; ".join(failures)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
