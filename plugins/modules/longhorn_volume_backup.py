#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: longhorn_volume_backup
short_description: Take on-demand backups of Longhorn volumes
version_added: 1.0.0
description:
  - Takes a snapshot of each selected Longhorn volume, then a backup of that snapshot, through Longhorn's
    C(Snapshot) and C(Backup) custom resources, and waits for the backups to complete.
  - Each backup carries the C(KubernetesStatus) label exactly as Longhorn's own REST C(snapshotBackup)
    action adds it, so that a restore can find the original PVC namespace and name.
  - Volumes are processed C(concurrency) at a time. A failed volume does not stop the others; the module
    fails at the end with a summary naming each failed volume.
  - A backup is an action, not a state. Outside check mode the module reports C(changed) whenever it
    took at least one backup. Use O(max_age) to make re-runs idempotent by skipping volumes that already
    have a recent C(Completed) backup.
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
      - Makes no API writes; reports the volumes that would be backed up.
  diff_mode:
    support: partial
    details:
      - The diff lists the volumes that get (or would get) a new backup.
  idempotent:
    support: partial
    details:
      - Every run takes new backups unless O(max_age) is set; with O(max_age) a re-run within that age changes nothing.
options:
  namespace:
    description: Namespace of the Longhorn custom resources.
    type: str
    default: longhorn-system
  volumes:
    description:
      - Names of the Longhorn volumes to back up.
      - A name with no volume is an error, and nothing is backed up.
      - Without O(volumes) and O(label_selector), all volumes are backed up.
    type: list
    elements: str
  label_selector:
    description: Back up the volumes whose labels match this selector, e.g. C(recurring-job-group.longhorn.io/default=enabled).
    type: str
  backup_mode:
    description: C(full) uploads every block; C(incremental) only blocks that changed since the last backup.
    type: str
    choices: [full, incremental]
    default: incremental
  labels:
    description: Extra labels stored with each backup (in the backup's cfg in the backupstore).
    type: dict
    default: {}
  concurrency:
    description:
      - How many volumes are snapshotted and backed up at the same time; the next batch starts when the current one has settled.
      - With O(wait=false) nothing is waited for, so every backup is requested at once and Longhorn queues them itself.
    type: int
    default: 5
  max_age:
    description:
      - Skip volumes whose newest C(Completed) backup is younger than this.
      - Seconds, or a Go duration such as C(1h) or C(24h0m0s).
      - Unset means every selected volume is backed up.
    type: str
  wait:
    description:
      - Wait for every snapshot to be ready and every backup to reach a final state.
      - With V(false) the snapshots and backups are only created; Longhorn starts each backup once its snapshot is ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for all backups together.
    type: int
    default: 3600
  wait_sleep:
    description: Seconds between polls.
    type: int
    default: 5
seealso:
  - name: Longhorn, create a backup
    description: Longhorn's documentation of backups.
    link: https://longhorn.io/docs/1.10.2/snapshots-and-backups/backup-and-restore/create-a-backup/
  - module: homelab.longhorn_dr.longhorn_system_backup
"""

EXAMPLES = r"""
- name: Back up every Longhorn volume
  homelab.longhorn_dr.longhorn_volume_backup:
    kubeconfig: ~/.kube/config
  register: volume_backups

- name: Show where each backup went
  ansible.builtin.debug:
    msg: "{{ item.volume }}: {{ item.url }}"
  loop: "{{ volume_backups.backups }}"

- name: Full backup of two volumes, unless they have one from the last hour
  homelab.longhorn_dr.longhorn_volume_backup:
    kubeconfig: ~/.kube/config
    volumes:
      - pvc-0123abcd-test
      - pvc-4567ef01-db
    backup_mode: full
    max_age: 1h

- name: Back up the volumes of the default recurring-job group
  module_defaults:
    group/homelab.longhorn_dr.longhorn:
      kubeconfig: ~/.kube/config
  block:
    - name: Back up the group
      homelab.longhorn_dr.longhorn_volume_backup:
        label_selector: recurring-job-group.longhorn.io/default=enabled
        concurrency: 2
"""

RETURN = r"""
backups:
  description: One entry per volume backed up (or, in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    volume:
      description: Longhorn volume name.
      type: str
      sample: pvc-0123abcd-test
    backup:
      description: Backup name, which is also its name in the backupstore. Empty in check mode.
      type: str
      sample: backup-1a2b3c4d5e6f7a8b
    snapshot:
      description: The snapshot the backup was taken from.
      type: str
      sample: snapshot-9f8e7d6c5b4a3f2e
    url:
      description: Backup URL, usable as a volume's C(fromBackup).
      type: str
      sample: s3://backups@us-east-1/?backup=backup-1a2b3c4d5e6f7a8b&volume=pvc-0123abcd-test
    size:
      description:
        - Logical size of the backup in bytes, as Longhorn reports it.
        - V(null) when Longhorn has marked the backup C(Completed) but not yet read it back from the backup target
          (it fills the size in a second step).
      type: int
      sample: 4194304
    duration:
      description: Seconds from the snapshot request to the final state.
      type: float
      sample: 12.5
    state:
      description: C(Completed), C(Error), or C(Created) with O(wait=false); C(Planned) in check mode.
      type: str
      sample: Completed
    error:
      description: Why the backup failed, empty otherwise.
      type: str
      sample: ""
skipped_volumes:
  description: Selected volumes that were not backed up, and why.
  returned: always
  type: list
  elements: dict
  contains:
    volume:
      description: Longhorn volume name.
      type: str
      sample: pvc-0123abcd-test
    reason:
      description: Why it was skipped.
      type: str
      sample: has a Completed backup from 2026-01-01T02:00:00Z, newer than max_age
  sample: []
failed_volumes:
  description: Names of the volumes whose backup did not complete.
  returned: always
  type: list
  elements: str
  sample: []
duration:
  description: Seconds the module ran.
  returned: always
  type: float
  sample: 30.2
"""

import datetime
import time

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    auth_argument_spec,
    new_module,
    unknown_namespace,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    InvalidValue,
    parse_duration,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_backup import (
    BatchBackup,
    failure_summary,
    latest_completed_backups,
    skip_reason,
    select_volumes,
    target_problem,
)


def argument_spec():
    return auth_argument_spec(
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        volumes=dict(type="list", elements="str"),
        label_selector=dict(type="str"),
        backup_mode=dict(type="str", choices=["full", "incremental"], default="incremental"),
        labels=dict(type="dict", default={}),
        concurrency=dict(type="int", default=5),
        max_age=dict(type="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        wait_sleep=dict(type="int", default=5),
    )


def plan_backups(access, params, now):
    """``(volumes to back up, skipped entries)``; raises before any write for unknown names or a bad option."""
    namespace = params["namespace"]
    if params["concurrency"] < 1:
        raise LonghornError("concurrency must be at least 1 (volumes at a time), not %d" % params["concurrency"])
    max_age = None
    if params["max_age"] is not None:
        try:
            max_age = parse_duration(params["max_age"], option="max_age")
        except InvalidValue as exc:
            raise LonghornError(str(exc)) from None
    volumes = access.list("Volume", API_VERSION, namespace=namespace, label_selector=params["label_selector"])
    if not volumes:
        unknown = unknown_namespace(access, namespace)
        if unknown:
            raise unknown
    selected = select_volumes(volumes, params["volumes"])
    latest = latest_completed_backups(access.list("Backup", API_VERSION, namespace=namespace)) if max_age is not None else {}
    targets = {t["metadata"]["name"]: t for t in access.list("BackupTarget", API_VERSION, namespace=namespace)}
    todo, skipped = [], []
    for volume in selected:
        name = volume["metadata"]["name"]
        reason = skip_reason(volume)
        if reason is None and name in latest and (now - latest[name][0]).total_seconds() < max_age:
            reason = "has a Completed backup from %s, newer than max_age" % latest[name][0].strftime("%Y-%m-%dT%H:%M:%SZ")
        if reason:
            skipped.append({"volume": name, "reason": reason})
        else:
            todo.append(volume)
    unavailable = {v["metadata"]["name"]: target_problem(v, targets) for v in todo}
    unavailable = {k: v for k, v in unavailable.items() if v}
    if unavailable:
        raise LonghornError("Cannot back up %s: %s; nothing was backed up" % (", ".join(sorted(unavailable)), sorted(set(unavailable.values()))[0]),
                            unavailable=unavailable)
    return todo, skipped


def run_module(module, access, clock=time.monotonic, now=None):
    """The module's work; returns the result dict (with ``failed`` and ``msg`` when a backup failed)."""
    params = module.params
    started = clock()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    todo, skipped = plan_backups(access, params, now)
    result = {"changed": bool(todo), "skipped_volumes": skipped, "failed_volumes": []}
    if module._diff:
        result["diff"] = {"before": {"backed_up_volumes": []}, "after": {"backed_up_volumes": [v["metadata"]["name"] for v in todo]}}
    if module.check_mode:
        result["backups"] = [{"volume": v["metadata"]["name"], "backup": "", "snapshot": "", "url": "", "size": None, "duration": 0.0,
                              "state": "Planned", "error": ""} for v in todo]
        result["duration"] = round(clock() - started, 3)
        return result
    batch = BatchBackup(access, params["namespace"], params["backup_mode"], labels=params["labels"],
                        timeout=params["wait_timeout"], sleep=params["wait_sleep"], clock=clock)
    backups = batch.run(todo, params["concurrency"], wait=params["wait"])
    result["backups"] = backups
    result["duration"] = round(clock() - started, 3)
    if params["wait"]:
        result["failed_volumes"] = [b["volume"] for b in backups if b["state"] != "Completed"]
        if result["failed_volumes"]:
            result["msg"] = failure_summary(backups)
    return result


def main():
    module = new_module(argument_spec(), supports_check_mode=True, mutually_exclusive=[("volumes", "label_selector")])
    try:
        result = run_module(module, K8sAccess(module))
    except LonghornError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    if result["failed_volumes"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
