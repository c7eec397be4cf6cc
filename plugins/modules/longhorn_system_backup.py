#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: longhorn_system_backup
short_description: Create, delete or restore Longhorn system backups
version_added: 1.0.0
description:
  - Creates a Longhorn C(SystemBackup) (Longhorn's settings, volumes, recurring jobs, StorageClasses, PVs and
    PVCs, uploaded to the default backup target) and waits for it to be C(Ready), or deletes one.
  - An existing SystemBackup with the same name is left alone (C(changed=false)); the module never creates
    a second one implicitly.
  - Longhorn refuses a SystemBackup while the default BackupTarget is unavailable; the module reports that
    before writing anything.
  - With O(state=restored), restores the Longhorn system from a SystemBackup through a C(SystemRestore) and waits
    until it is C(Completed). Longhorn recreates the volumes that do not exist (each from its last backup), then
    their PVs and PVCs; objects that already exist are skipped, never overwritten.
  - Longhorn refuses a restore while any volume is attached; the module checks that first and lists the volumes.
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
      - Creation is a server-side dry run; deletion makes no API call.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Idempotent when O(name) is given. Without O(name) each run creates a new, time-stamped system backup.
      - With O(state=restored), a SystemRestore that already exists for the backup is waited for, never repeated.
options:
  name:
    description:
      - Name of the SystemBackup, also its name in the backupstore.
      - Required with O(state=absent). With O(state=present) and no name, a new name C(system-backup-<UTC time>) is generated.
      - With O(state=restored) and no name, the newest C(Ready) SystemBackup is restored.
    type: str
  state:
    description:
      - C(present) creates the system backup and waits for it; C(absent) deletes it.
      - C(restored) restores the Longhorn system from it and waits until the restore is C(Completed).
        After a rebuild, configure the backup target first, so that Longhorn syncs the system backups from the bucket.
    type: str
    choices: [present, absent, restored]
    default: present
  restore_name:
    description:
      - Name of the SystemRestore with O(state=restored). Defaults to C(restore-<system backup name>).
      - A SystemRestore of that name that already exists is waited for, not created again; one that failed
        must be deleted before a new attempt, as Longhorn's documentation prescribes.
    type: str
  volume_backup_policy:
    description:
      - Volume backups Longhorn takes as part of the system backup.
      - C(if-not-present) backs up volumes whose data changed since their last backup, C(always) backs up every volume,
        C(disabled) takes none.
      - Only used when the system backup is created; an existing one is never changed.
    type: str
    choices: [if-not-present, always, disabled]
    default: if-not-present
  keep_remote:
    description:
      - With O(state=absent), keep the system backup in the backupstore and delete only the custom resource,
        through the C(longhorn.io/delete-custom-resource-only) label.
    type: bool
    default: false
  namespace:
    description: Namespace of the Longhorn custom resources.
    type: str
    default: longhorn-system
  wait:
    description: Wait until the system backup is C(Ready) (gone, for O(state=absent); restored, for O(state=restored)).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
  wait_sleep:
    description: Seconds between polls.
    type: int
    default: 5
seealso:
  - name: Longhorn, back up the Longhorn system
    description: Longhorn's documentation of system backups.
    link: https://longhorn.io/docs/1.10.2/advanced-resources/system-backup-restore/backup-longhorn-system/
  - module: homelab.longhorn_dr.longhorn_volume_backup
"""

EXAMPLES = r"""
- name: Create a system backup and wait until it is uploaded
  homelab.longhorn_dr.longhorn_system_backup:
    kubeconfig: ~/.kube/config
    name: before-rebuild
    volume_backup_policy: always
  register: system_backup

- name: Show its state
  ansible.builtin.debug:
    msg: "{{ system_backup.result.status.state }}"

- name: Delete the resource but keep the backup in the bucket
  homelab.longhorn_dr.longhorn_system_backup:
    kubeconfig: ~/.kube/config
    name: before-rebuild
    state: absent
    keep_remote: true

- name: A new system backup with a generated name
  module_defaults:
    group/homelab.longhorn_dr.longhorn:
      kubeconfig: ~/.kube/config
  block:
    - name: Create it
      homelab.longhorn_dr.longhorn_system_backup:
        volume_backup_policy: if-not-present

- name: After a rebuild, restore the Longhorn system from the newest Ready system backup
  homelab.longhorn_dr.longhorn_system_backup:
    kubeconfig: ~/.kube/config
    state: restored
    wait_timeout: 7200
  register: system_restore
"""

RETURN = r"""
name:
  description: Name of the system backup.
  returned: always
  type: str
  sample: system-backup-20260101-020000
result:
  description: The SystemBackup as last read (the SystemRestore with O(state=restored)); empty after a deletion.
  returned: always
  type: dict
  sample: {"metadata": {"name": "before-rebuild"}, "spec": {"volumeBackupPolicy": "always"}, "status": {"state": "Ready"}}
restore_name:
  description: Name of the SystemRestore.
  returned: when O(state=restored)
  type: str
  sample: restore-before-rebuild
rollout_job:
  description: The Job that runs the restore; its logs explain a failure.
  returned: when O(state=restored)
  type: str
  sample: longhorn-system-rollout-restore-before-rebuild
system_backup:
  description: The SystemBackup restored from.
  returned: when O(state=restored)
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: before-rebuild
    version:
      description: The Longhorn version that took it.
      type: str
      sample: v1.10.2
    created_at:
      description: When it was uploaded.
      type: str
      sample: "2026-01-01T02:00:00Z"
duration:
  description: Seconds the module ran.
  returned: always
  type: float
  sample: 42.1
"""

import time

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    WaitTimeout,
    auth_argument_spec,
    new_module,
    unknown_namespace,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_BACKUP_TARGET,
    DEFAULT_NAMESPACE,
    DELETE_CR_ONLY_LABEL,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backup_target import VERSION_SETTING
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._system_backup import (
    KIND,
    RESTORE_KIND,
    STATE_READY,
    VOLUME_BACKUP_POLICIES,
    created_at,
    default_restore_name,
    default_target_problem,
    describe_backups,
    generated_name,
    keeps_remote,
    latest_ready,
    managed_fields,
    not_detached,
    restore_body,
    restore_in_progress,
    restore_settled,
    rollout_job_name,
    settled,
    system_backup_body,
    version_warning,
)


def argument_spec():
    return auth_argument_spec(
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent", "restored"], default="present"),
        restore_name=dict(type="str"),
        volume_backup_policy=dict(type="str", choices=list(VOLUME_BACKUP_POLICIES), default="if-not-present"),
        keep_remote=dict(type="bool", default=False),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        wait_sleep=dict(type="int", default=5),
    )


def require_namespace(access, namespace):
    """Raise when the namespace does not exist: every lookup in it finds nothing, which would read as 'not found'."""
    unknown = unknown_namespace(access, namespace)
    if unknown:
        raise unknown


def wait_ready(access, params, name):
    try:
        return access.wait_for(KIND, API_VERSION, [name], settled, namespace=params["namespace"],
                               timeout=params["wait_timeout"], sleep=params["wait_sleep"])[name]
    except WaitTimeout as exc:
        last = (exc.details.get("last") or {}).get(name) or {}
        state = (last.get("status") or {}).get("state") or "none"
        raise LonghornError("Timed out after %ss waiting for SystemBackup %s to be Ready (last state: %s)" % (params["wait_timeout"], name, state),
                            result=last) from None


def ensure_present(module, access):
    params = module.params
    namespace = params["namespace"]
    name = params["name"] or generated_name()
    existing = access.get(KIND, API_VERSION, name, namespace=namespace)
    result = {"changed": False, "name": name}
    if existing is not None:
        policy = (existing.get("spec") or {}).get("volumeBackupPolicy")
        if policy and policy != params["volume_backup_policy"]:
            module.warn("SystemBackup %s exists with volume_backup_policy %s; it is left as it is" % (name, policy))
        if params["wait"] and not module.check_mode:
            existing = wait_ready(access, params, name)
        else:
            settled(existing)  # an existing backup in Error fails the task
        result["result"] = existing
        return result
    target = access.get("BackupTarget", API_VERSION, DEFAULT_BACKUP_TARGET, namespace=namespace)
    if target is None:
        require_namespace(access, namespace)
    problem = default_target_problem(target)
    if problem:
        raise LonghornError("Cannot create SystemBackup %s: %s; Longhorn refuses system backups until it is available" % (name, problem))
    body = system_backup_body(name, namespace, params["volume_backup_policy"])
    # In check mode this is a server-side dry run: the webhooks judge it, nothing is stored.
    created = access.create(KIND, API_VERSION, body, namespace=namespace)
    result.update(changed=True, result=created)
    if module._diff:
        result["diff"] = {"before": {}, "after": managed_fields(created or body)}
    if params["wait"] and not module.check_mode:
        result["result"] = wait_ready(access, params, name)
    return result


def wait_gone(access, params, name, clock=time.monotonic, sleep=time.sleep):
    deadline = clock() + params["wait_timeout"]
    while access.get(KIND, API_VERSION, name, namespace=params["namespace"]) is not None:
        if clock() >= deadline:
            raise LonghornError("Timed out after %ss waiting for SystemBackup %s to be deleted" % (params["wait_timeout"], name))
        sleep(params["wait_sleep"])


def ensure_absent(module, access):
    params = module.params
    namespace = params["namespace"]
    name = params["name"]
    existing = access.get(KIND, API_VERSION, name, namespace=namespace)
    result = {"changed": existing is not None, "name": name, "result": {}}
    if existing is None:
        require_namespace(access, namespace)
        return result
    if module._diff:
        result["diff"] = {"before": managed_fields(existing), "after": {}}
    if module.check_mode:
        return result
    # ref §1.3: the label decides whether Longhorn deletes the remote copy; set it (or clear it) before deleting.
    if params["keep_remote"] != keeps_remote(existing):
        access.merge_patch(KIND, API_VERSION, name, {"metadata": {"labels": {DELETE_CR_ONLY_LABEL: "true" if params["keep_remote"] else None}}},
                           namespace=namespace)
    if not params["keep_remote"]:
        problem = default_target_problem(access.get("BackupTarget", API_VERSION, DEFAULT_BACKUP_TARGET, namespace=namespace))
        if problem:
            module.warn("%s: Longhorn deletes only the resource and keeps the system backup in the backupstore" % problem)
    access.delete(KIND, API_VERSION, name, namespace=namespace)
    if params["wait"]:
        wait_gone(access, params, name)
    return result


def choose_backup(access, params):
    backups = access.list(KIND, API_VERSION, namespace=params["namespace"])
    if not backups:
        require_namespace(access, params["namespace"])
    if params["name"]:
        chosen = next((b for b in backups if b["metadata"]["name"] == params["name"]), None)
        if chosen is None:
            raise LonghornError("name: SystemBackup %s not found (found: %s); after a rebuild, configure the backup target first so "
                                "that Longhorn syncs the system backups from the bucket" % (params["name"], describe_backups(backups)))
    else:
        chosen = latest_ready(backups)
        if chosen is None:
            raise LonghornError("No Ready SystemBackup to restore from (found: %s)" % describe_backups(backups))
    state = (chosen.get("status") or {}).get("state")
    if state != STATE_READY:
        raise LonghornError("SystemBackup %s is %s, not Ready; only a Ready system backup can be restored"
                            % (chosen["metadata"]["name"], state or "without a state"))
    return chosen


def wait_restored(access, params, name):
    try:
        return access.wait_for(RESTORE_KIND, API_VERSION, [name], restore_settled, namespace=params["namespace"],
                               timeout=params["wait_timeout"], sleep=params["wait_sleep"])[name]
    except WaitTimeout as exc:
        last = (exc.details.get("last") or {}).get(name) or {}
        state = (last.get("status") or {}).get("state") or "none"
        raise LonghornError("Timed out after %ss waiting for SystemRestore %s to complete (last state: %s; Job %s runs it)"
                            % (params["wait_timeout"], name, state, rollout_job_name(name)), result=last,
                            rollout_job=rollout_job_name(name)) from None


def ensure_restored(module, access):
    """ref §1.8, §2: one SystemRestore per system backup, created only while every volume is detached."""
    params = module.params
    namespace = params["namespace"]
    backup = choose_backup(access, params)
    backup_name = backup["metadata"]["name"]
    restore_name = params["restore_name"] or default_restore_name(backup_name)
    backup_status = backup.get("status") or {}
    result = {"changed": False, "name": backup_name, "restore_name": restore_name, "rollout_job": rollout_job_name(restore_name),
              "system_backup": {"name": backup_name, "version": backup_status.get("version") or "", "created_at": created_at(backup)}}
    restores = access.list(RESTORE_KIND, API_VERSION, namespace=namespace)
    existing = next((r for r in restores if r["metadata"]["name"] == restore_name), None)
    if existing is not None:
        restored_from = (existing.get("spec") or {}).get("systemBackup")
        if restored_from != backup_name:
            raise LonghornError("SystemRestore %s exists and restores SystemBackup %s, not %s; choose another restore_name"
                                % (restore_name, restored_from, backup_name), result=existing)
        # A finished restore is done; one in Error fails here with its conditions and Job name.
        if restore_settled(existing) or not params["wait"] or module.check_mode:
            result["result"] = existing
            return result
        result["result"] = wait_restored(access, params, restore_name)
        return result
    busy = sorted(r["metadata"]["name"] for r in restores if restore_in_progress(r))
    if busy:
        raise LonghornError("Another SystemRestore is in progress: %s; Longhorn runs one at a time" % ", ".join(busy))
    attached = not_detached(access.list("Volume", API_VERSION, namespace=namespace))
    if attached:
        raise LonghornError("Cannot restore SystemBackup %s while volumes are not detached: %s. Scale their workloads to zero "
                            "first" % (backup_name, ", ".join(attached)), volumes_not_detached=attached)
    setting = access.get("Setting", API_VERSION, VERSION_SETTING, namespace=namespace) or {}
    warning = version_warning(backup_status.get("version"), setting.get("value"))
    if warning:
        module.warn(warning)
    body = restore_body(restore_name, namespace, backup_name)
    # In check mode a server-side dry run: Longhorn's validator judges it, nothing is stored.
    created = access.create(RESTORE_KIND, API_VERSION, body, namespace=namespace)
    result.update(changed=True, result=created)
    if module._diff:
        result["diff"] = {"before": {}, "after": {"restore_name": restore_name, "system_backup": backup_name}}
    if params["wait"] and not module.check_mode:
        result["result"] = wait_restored(access, params, restore_name)
    return result


STATE_HANDLERS = {"present": ensure_present, "absent": ensure_absent, "restored": ensure_restored}


def main():
    module = new_module(argument_spec(), supports_check_mode=True, required_if=[("state", "absent", ["name"])])
    started = time.monotonic()
    try:
        result = STATE_HANDLERS[module.params["state"]](module, K8sAccess(module))
    except LonghornError as exc:
        module.fail_json(msg=str(exc), duration=round(time.monotonic() - started, 3), **exc.details)
    result["duration"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
