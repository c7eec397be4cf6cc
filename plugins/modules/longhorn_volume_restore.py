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
  - A volume whose restore failed is never deleted by default. It is restored again into a fresh volume (see
    O(retry_failed)) and kept, with the command that removes it.
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
      - A volume already restored from the chosen backup is skipped, and so is its retry volume once restored.
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
      - A namespace that no backup volume of the target belongs to is refused by name, with the known ones, before
        anything is created.
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
  retry_failed:
    description:
      - Longhorn does not retry a failed restore (C(faulted) or C(RestoreFailure)). With this on, a planned volume
        whose restore failed, and that no PV uses, is restored again into a fresh volume,
        C(<name>-retry-<n>) (at most 40 characters; a longer name is shortened and gets 8 hex characters of its
        SHA-256). The retry volume carries the annotations C(longhorn-dr.homelab/retry-of) (the planned name) and
        C(longhorn-dr.homelab/retry) (n), so that a re-run recognises it, waits for it while it restores, and
        creates no second one.
      - The failed volume is kept, since someone may have written data into it that the backup does not hold. It is
        returned in RV(kept_failed_volumes) with the one command that removes it, and named in a warning.
      - Off, such a volume is reported as failed and nothing is created.
    type: bool
    default: true
    version_added: 1.1.0
  delete_untouched_failed:
    description:
      - Delete a failed volume before its retry, but only a volume proven untouched since its restore failed. The
        retry then reuses the planned name when that is free again.
      - 'Proven untouched means every one of these holds: the volume carries this collection''s
        C(longhorn-dr.homelab/restored-from) annotation for the planned backup; it is still C(faulted) with the
        Restore condition reason C(RestoreFailure) and C(restoreRequired=true), C(detached) with no
        C(currentNodeID); C(remountRequestedAt) and C(lastAutoSalvagedAt) are empty; its VolumeAttachment exists and
        holds no ticket besides the C(volume-restore-controller) one; no PV names it and
        C(kubernetesStatus.pvName) is empty; C(kubernetesStatus.lastPVCRefAt) and C(lastPodRefAt) are not later than
        the volume''s creation; none of its Snapshot CRs was taken by a user or a recurring job
        (C(status.userCreated) or C(spec.createSnapshot)); its C(actualSize) is not above the backup''s size.'
      - A volume that fails any check is kept and reported with every reason, and the retry goes into a fresh
        volume as without this option. See docs/disaster-recovery.md for why each check proves what it does.
    type: bool
    default: false
    version_added: 1.1.0
  recreate_failed:
    description:
      - Deprecated, use O(retry_failed) and O(delete_untouched_failed). In 1.0.0 this deleted a failed volume
        whose only guard was that no PV used it, and it was on by default.
      - V(true) now means O(retry_failed=true) and O(delete_untouched_failed=true), so a failed volume is deleted
        only when proven untouched. V(false) means O(retry_failed=false).
      - Not together with O(retry_failed) or O(delete_untouched_failed).
    type: bool
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

- name: Retry a failed restore; delete the failed volume only when it is proven untouched
  homelab.longhorn_dr.longhorn_volume_restore:
    volumes: [pvc-0123abcd]
    delete_untouched_failed: true
  register: retried

- name: Show the failed volumes that were kept, with the command that removes each
  ansible.builtin.debug:
    msg: "{{ retried.kept_failed_volumes | map(attribute='delete_command') }}"

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
      description:
        - Name of the restored volume, the planned one (the original name unless O(restore_as) is set), or the retry
          volume that replaced a failed restore of it (see O(retry_failed)).
      type: str
      sample: pvc-0123abcd
    planned_volume:
      description: The name the volume was planned under (the original one unless O(restore_as) is set).
      type: str
      sample: pvc-0123abcd
      version_added: 1.1.0
    kept_failed_volumes:
      description: The failed volumes of this planned volume that are kept, as in RV(kept_failed_volumes).
      type: list
      elements: dict
      version_added: 1.1.0
    deleted_failed_volumes:
      description: Failed volumes of this planned volume that O(delete_untouched_failed) deleted in this run.
      type: list
      elements: str
      version_added: 1.1.0
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
kept_failed_volumes:
  description:
    - Volumes whose restore failed and that are kept because they may hold data the backup does not.
  returned: always
  type: list
  elements: dict
  version_added: 1.1.0
  contains:
    volume:
      description: Name of the kept volume.
      type: str
      sample: pvc-0123abcd
    planned_volume:
      description: The planned volume it was a restore of.
      type: str
      sample: pvc-0123abcd
    backup:
      description: The backup its restore came from.
      type: str
      sample: backup-1a2b3c4d5e6f7a8b
    delete_command:
      description: The one command that removes it, with its data.
      type: str
      sample: kubectl -n longhorn-system delete volumes.longhorn.io pvc-0123abcd
    reason:
      description: Why it is kept, with every check that O(delete_untouched_failed) found failing.
      type: str
      sample: its restore failed and it may hold data written since; it is kept
deleted_failed_volumes:
  description: Failed volumes that O(delete_untouched_failed) proved untouched and deleted in this run.
  returned: always
  type: list
  elements: str
  sample: []
  version_added: 1.1.0
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
    delete_command,
    failed_restore,
    kubernetes_status,
    original_volume_name,
    parse_time,
    pick_backup,
    restore_family,
    restore_outcome,
    restored_from,
    retry_volume_name,
    untouched_refusals,
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
        retry_failed=dict(type="bool", default=True),
        delete_untouched_failed=dict(type="bool", default=False),
        # Until 1.x it deleted a failed volume on its only guard, no PV; see resolve_recreate_failed.
        recreate_failed=dict(type="bool", removed_in_version="2.0.0", removed_from_collection="homelab.longhorn_dr"),
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


def resolve_recreate_failed(params):
    """The deprecated recreate_failed in terms of retry_failed and delete_untouched_failed (safe side only).

    true: retry, and delete a failed volume only when it is proven untouched; false: do not retry (as before).
    """
    old = params.get("recreate_failed")
    if old is not None:
        params["retry_failed"] = bool(old)
        params["delete_untouched_failed"] = bool(old)


def check_params(params):
    selectors = [bool(params["volumes"]), bool(params["namespaces"]), params["all_volumes"]]
    if sum(selectors) != 1:
        raise LonghornError("Choose the volumes with exactly one of volumes, namespaces or all_volumes=true (got volumes=%r, "
                            "namespaces=%r, all_volumes=%r)" % (params["volumes"], params["namespaces"], params["all_volumes"]))
    overrides = params.get("overrides") or {}
    if overrides and (params["backup"] or params["restore_as"]):
        raise LonghornError("overrides sets the backup and name per volume; do not combine it with backup (got %r) or restore_as "
                            "(got %r)" % (params["backup"], params["restore_as"]))
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
        namespace_of = {name: kubernetes_status((bv.get("status") or {}).get("labels")).get("namespace")
                        for name, bv in by_volume.items()}
        known = sorted({namespace for namespace in namespace_of.values() if namespace})
        unknown = sorted(wanted - set(known))
        if unknown:
            # A typo must not restore the other namespaces and call it done.
            raise LonghornError("namespaces: unknown namespace %s: no backup volume in BackupTarget %s belongs to a PVC in it "
                                "(known: %s)" % (", ".join(repr(name) for name in unknown), params["backup_target"],
                                                 ", ".join(known) or "none"))
        return {name: bv for name, bv in by_volume.items() if namespace_of[name] in wanted}
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
        "planned_volume": volume,
        "kept_failed_volumes": [],
        "deleted_failed_volumes": [],
    }


def failed_entry(volume, message):
    return {"volume": volume, "source_volume": volume, "backup": None, "backup_url": None, "backup_created_at": None, "rpo_seconds": None, "size": None,
            "access_mode": None, "pvc_namespace": None, "pvc_name": None, "state": STATE_FAILED, "duration": 0.0, "error": message,
            "planned_volume": volume, "kept_failed_volumes": [], "deleted_failed_volumes": []}


def kept_entry(volume, entry, namespace, reason):
    name = volume["metadata"]["name"]
    return {"volume": name, "planned_volume": entry["planned_volume"], "backup": entry["backup"],
            "delete_command": delete_command(name, namespace), "reason": reason}


KEPT_REASON = "its restore failed and it may hold data written since; it is kept"


class Evidence:
    """What delete_untouched_failed looks at besides the volume, read once and only when it is needed."""

    def __init__(self, access, namespace):
        self.access = access
        self.namespace = namespace
        self._pvs = None

    def pvs(self):
        if self._pvs is None:
            self._pvs = self.access.list("PersistentVolume", "v1")
        return self._pvs

    def attachment(self, name):
        return self.access.get("VolumeAttachment", API_VERSION, name, namespace=self.namespace)

    def snapshots(self, name):
        return self.access.list("Snapshot", API_VERSION, namespace=self.namespace, label_selector="longhornvolume=%s" % name)

    def refusals(self, volume, entry, backup):
        name = volume["metadata"]["name"]
        return untouched_refusals(volume, entry["backup_url"], backup, self.pvs(), self.attachment(name), self.snapshots(name))


def plan_existing(params, entry, backup, family, existing, evidence):
    """For a planned volume of which some attempts exist: what to wait for, retry into, delete or keep.

    Returns the name of the volume to create, or None when nothing is created. Never deletes by default:
    a failed attempt is kept unless delete_untouched_failed is on and it is proven untouched.
    """
    namespace = params["namespace"]
    wanted = backup_url_parts(entry["backup_url"])
    for attempt, volume in sorted(family.items()):
        origin = restored_from(volume)
        if origin != wanted:
            how = "was restored from backup %s" % origin[0] if origin else "was not restored from a backup"
            entry.update(volume=volume["metadata"]["name"], state=STATE_FAILED,
                         error="volume %s already exists and %s; it is never overwritten. Delete it or restore under another name "
                               "(restore_as)" % (volume["metadata"]["name"], how))
            return None
    failed = {attempt: volume for attempt, volume in family.items() if failed_restore(volume)}
    live = sorted(attempt for attempt in family if attempt not in failed)
    if live:
        # Restored or still restoring (an interrupted run): that one is the volume; nothing new.
        entry.update(volume=family[live[-1]]["metadata"]["name"], state=STATE_ALREADY_RESTORED)
        entry["kept_failed_volumes"] = [kept_entry(v, entry, namespace, KEPT_REASON) for _a, v in sorted(failed.items())]
        return None
    latest = family[max(family)]
    claimed = ((latest.get("status") or {}).get("kubernetesStatus") or {}).get("pvName")
    if claimed or not params["retry_failed"]:
        # Watched and reported as failed, as Longhorn does not retry a failed restore (ref §1.5 step 3).
        entry.update(volume=latest["metadata"]["name"], state=STATE_ALREADY_RESTORED,
                     hint=("PV %s uses it, so it is not retried" % claimed) if claimed else "retry_failed=true restores it again into a fresh volume")
        entry["kept_failed_volumes"] = [kept_entry(v, entry, namespace, KEPT_REASON) for a, v in sorted(failed.items()) if v is not latest]
        return None
    doomed, kept = [], []
    for _attempt, volume in sorted(failed.items()):
        if params["delete_untouched_failed"]:
            refusals = evidence.refusals(volume, entry, backup)
            if not refusals:
                doomed.append(volume)
                continue
            kept.append(kept_entry(volume, entry, namespace, "delete_untouched_failed refused to delete it: " + "; ".join(refusals)))
        else:
            kept.append(kept_entry(volume, entry, namespace, KEPT_REASON))
    doomed_names = [v["metadata"]["name"] for v in doomed]
    remaining = [attempt for attempt, volume in family.items() if volume["metadata"]["name"] not in doomed_names]
    target = entry["planned_volume"]
    attempt = 0 if 0 not in remaining else max(remaining) + 1
    name = target if attempt == 0 else retry_volume_name(target, attempt)
    while name in existing and name not in doomed_names:  # a volume of that name that is not ours: skip its number
        attempt += 1
        name = retry_volume_name(target, attempt)
    entry.update(volume=name, kept_failed_volumes=kept, deleted_failed_volumes=doomed_names, attempt=attempt,
                 delete_first=[(v["metadata"]["name"], bool(v["metadata"].get("deletionTimestamp"))) for v in doomed])
    return name


def plan(params, access, now):
    """Entries for every chosen volume (keyed by the planned name), and the bodies of the volumes to create."""
    namespace = params["namespace"]
    backup_volumes = [bv for bv in access.list("BackupVolume", API_VERSION, namespace=namespace) if in_target(bv, params["backup_target"])]
    backups = [b for b in access.list("Backup", API_VERSION, namespace=namespace) if in_target(b, params["backup_target"])]
    existing = {v["metadata"]["name"]: v for v in access.list("Volume", API_VERSION, namespace=namespace)}
    evidence = Evidence(access, namespace)
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
        family = restore_family(existing, target)
        volume_name = plan_existing(params, entry, backup, family, existing, evidence) if family else target
        if volume_name is None:
            continue
        attempt = entry.get("attempt") or 0
        bodies[target] = volume_body(volume_name, namespace, backup, number_of_replicas=choice.get("number_of_replicas") or params["number_of_replicas"],
                                     data_engine=params["data_engine"], stale_replica_timeout=params["stale_replica_timeout"],
                                     retry_of=target if attempt else None, retry=attempt or None)
    return entries, bodies


def wait_deleted(module, access, name, clock=time.monotonic, sleep=time.sleep):
    deadline = clock() + module.params["wait_timeout"]
    while access.get("Volume", API_VERSION, name, namespace=module.params["namespace"]) is not None:
        if clock() >= deadline:
            raise LonghornError("volume %s, whose restore failed, was not deleted within %ss" % (name, module.params["wait_timeout"]))
        sleep(module.params["wait_sleep"])


def start_restore(module, access, entry, body):
    """Delete the proven-untouched failed attempts (opt-in), then create the volume."""
    namespace = module.params["namespace"]
    doomed = entry.get("delete_first") or []
    if not module.check_mode:
        for name, deleting in doomed:
            if not deleting:
                access.delete("Volume", API_VERSION, name, namespace=namespace)
                entry["wrote"] = True
        for name, _deleting in doomed:
            wait_deleted(module, access, name)
    if module.check_mode and body["metadata"]["name"] in [name for name, _deleting in doomed]:
        return  # a dry run cannot create a name that still exists
    access.create("Volume", API_VERSION, body, namespace=namespace)


def run_restores(module, access, entries, bodies, clock=time.monotonic, sleep=time.sleep):
    """Create the volumes with at most ``concurrency`` restoring at once, waiting for each to finish (ref §1.5)."""
    params = module.params
    namespace = params["namespace"]
    queue = sorted(bodies)
    # Volumes that exist from an earlier, interrupted run are waited for as well.
    active = {key: clock() for key, entry in entries.items() if entry["state"] == STATE_ALREADY_RESTORED}
    deadline = clock() + params["wait_timeout"]
    limit = params["concurrency"] if params["wait"] else len(queue) + 1
    first_round = True
    while queue or active:
        while queue and len(active) < limit:
            key = queue.pop(0)
            entry = entries[key]
            try:
                start_restore(module, access, entry, bodies[key])
            except LonghornError as exc:
                entry.update(state=STATE_FAILED, error=str(exc))
                continue
            entry["state"] = STATE_PLANNED if module.check_mode else STATE_RESTORING
            entry["created"] = True
            active[key] = clock()
        if module.check_mode or not params["wait"]:
            return
        if not first_round:
            sleep(params["wait_sleep"])
        first_round = False
        volumes = {v["metadata"]["name"]: v for v in access.list("Volume", API_VERSION, namespace=namespace)}
        for key in sorted(active):
            entry = entries[key]
            volume = volumes.get(entry["volume"])
            if volume is None:
                outcome, message = STATE_FAILED, "volume disappeared while restoring"
            else:
                outcome, message = restore_outcome(volume)
            if outcome == STATE_RESTORING:
                continue
            started = active.pop(key)
            if outcome == STATE_RESTORED:
                entry["state"] = STATE_RESTORED if entry.get("created") else STATE_ALREADY_RESTORED
            else:
                entry.update(state=STATE_FAILED, error="restore of %s from %s failed: %s%s" % (
                    entry["volume"], entry["backup"], message, "; %s" % entry["hint"] if entry.get("hint") else ""))
            entry["duration"] = round(clock() - started, 3) if entry.get("created") else 0.0
        if active and clock() >= deadline:
            for key in sorted(active):
                volume = volumes.get(entries[key]["volume"]) or {}
                _outcome, message = restore_outcome(volume) if volume else (None, "not found")
                entries[key].update(state=STATE_FAILED, error="timed out after %ss (%s)" % (params["wait_timeout"], message))
            return


MUTUALLY_EXCLUSIVE = [("recreate_failed", "retry_failed"), ("recreate_failed", "delete_untouched_failed")]
INTERNAL_KEYS = ("created", "wrote", "delete_first", "hint", "attempt")


def main():
    # mutually_exclusive is checked before defaults apply, so it refuses only what the task set.
    module = new_module(argument_spec(), supports_check_mode=True, mutually_exclusive=MUTUALLY_EXCLUSIVE)
    started = time.monotonic()
    try:
        resolve_recreate_failed(module.params)
        check_params(module.params)
        access = K8sAccess(module)
        entries, bodies = plan(module.params, access, time.time())
        run_restores(module, access, entries, bodies)
    except LonghornError as exc:
        module.fail_json(msg=str(exc), duration=round(time.monotonic() - started, 3), **exc.details)
    volumes = [entries[name] for name in sorted(entries)]
    # Popped from every entry: any() would stop at the first.
    internal = [{key: entry.pop(key, None) for key in INTERNAL_KEYS} for entry in volumes]
    changed = any(item["created"] or item["wrote"] for item in internal)
    kept = [k for entry in volumes for k in entry["kept_failed_volumes"]]
    result = {"changed": changed, "volumes": volumes, "failed_volumes": [e["volume"] for e in volumes if e["state"] == STATE_FAILED],
              "kept_failed_volumes": kept, "deleted_failed_volumes": sorted(n for e in volumes for n in e["deleted_failed_volumes"]),
              "duration": round(time.monotonic() - started, 3)}
    if kept:
        module.warn("Kept %d volume(s) whose restore failed, as they may hold data the backup does not: %s"
                    % (len(kept), "; ".join("%s (remove it with: %s)" % (k["volume"], k["delete_command"]) for k in kept)))
    if module._diff:
        result["diff"] = {"before": {}, "after": {bodies[name]["metadata"]["name"]: bodies[name]["spec"] for name in sorted(bodies)}}
    if result["failed_volumes"]:
        failures = ["%s (%s)" % (e["volume"], e["error"]) for e in volumes if e["state"] == STATE_FAILED]
        module.fail_json(msg="%d of %d volumes failed to restore: %s" % (len(failures), len(volumes), "; ".join(failures)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
