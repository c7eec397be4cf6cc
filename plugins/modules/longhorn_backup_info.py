#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: longhorn_backup_info
short_description: Report Longhorn volumes, their backups, the backup target and system backups
version_added: 1.0.0
description:
  - Reads the cluster's view of Longhorn backups and changes nothing.
  - For every Longhorn volume, its PVC namespace and name and access mode, its newest backup (any state) and newest
    C(Completed) backup with their ages, the number of completed backups, and its recurring-job membership.
  - The BackupTarget's URL, credential Secret name, poll interval, availability and last sync time. On Longhorn 1.7 and
    earlier, detected from the C(current-longhorn-version) Setting, the URL, Secret name and poll interval come from the
    C(backup-target), C(backup-target-credential-secret) and C(backupstore-poll-interval) Settings.
  - The system backups with their states, newest first.
  - Each kind is read with one list request, so the module costs the same few requests for ten volumes or hundreds.
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.INFO_MODULE
  - homelab.longhorn_dr._attributes.ACTIONGROUP_LONGHORN
options:
  namespace:
    description: The Longhorn namespace, where the volumes, backups, Settings and the BackupTarget live.
    type: str
    default: longhorn-system
  volumes:
    description:
      - Report only these Longhorn volumes (volume names, not PVC names).
      - A name that is not a Longhorn volume fails the task, naming it.
      - Leave it out to report every volume.
    type: list
    elements: str
  backup_target:
    description:
      - Name of the BackupTarget to report, and whose backups count for the volumes.
      - Backups on another target (Longhorn 1.8 and later can have several) are left out of the volumes' backups.
      - On Longhorn 1.7 and earlier only C(default) exists.
      - A target that does not exist fails the task (Longhorn 1.8 and later).
    type: str
    default: default
notes:
  - A backup's time is C(status.backupCreatedAt) (the upload finished), else C(status.snapshotCreatedAt), else the
    creation time of its C(Backup) resource; "newest" compares these times.
  - The C(Backup) resources of a volume are found by their C(backup-volume) label, else C(status.volumeName).
  - Longhorn deletes C(Error) and C(Unknown) Backup resources after the C(failed-backup-ttl) Setting (1440 minutes by
    default), so a failed newest backup shows in RV(volumes[].last_backup) only for that long.
  - Longhorn puts a volume with no recurring-job or job-group label into the C(default) group by adding the label
    C(recurring-job-group.longhorn.io/default); the module reports that group also before Longhorn added the label.
seealso:
  - module: homelab.longhorn_dr.longhorn_volume_backup
  - module: homelab.longhorn_dr.longhorn_system_backup
  - module: homelab.longhorn_dr.longhorn_backup_target
"""

EXAMPLES = r"""
- name: Read the backup state of the cluster
  homelab.longhorn_dr.longhorn_backup_info:
    kubeconfig: ~/.kube/config
  register: backups

- name: Volumes without a completed backup in the last 24 hours
  ansible.builtin.debug:
    msg: >-
      {{ backups.volumes
         | rejectattr('last_completed_backup')
         | map(attribute='name') | list
         + backups.volumes
         | selectattr('last_completed_backup')
         | selectattr('last_completed_backup.age_seconds', 'gt', 86400)
         | map(attribute='name') | list }}

- name: Two volumes only
  homelab.longhorn_dr.longhorn_backup_info:
    kubeconfig: ~/.kube/config
    volumes:
      - pvc-0123abcd-0000-4000-8000-000000000001
      - pvc-0123abcd-0000-4000-8000-000000000002
  register: two

- name: Fail when the backup target is not available
  ansible.builtin.assert:
    that: backups.backup_target.available
    fail_msg: "Backup target {{ backups.backup_target.url }}: {{ backups.backup_target.message }}"
"""

RETURN = r"""
longhorn_version:
  description: The C(current-longhorn-version) Setting; null when it is missing.
  returned: always
  type: str
  sample: v1.10.2
legacy_settings:
  description: Whether the backup target was read from the Longhorn 1.7 (and earlier) Settings.
  returned: always
  type: bool
  sample: false
checked_at:
  description: When the module read the cluster, UTC, ISO 8601. Ages are counted to this time.
  returned: always
  type: str
  sample: "2026-11-22T02:00:00Z"
backup_target:
  description: The BackupTarget O(backup_target).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the BackupTarget.
      type: str
      sample: default
    url:
      description: The backup target URL; null when unset.
      type: str
      sample: s3://backups@us-east-1/
    credential_secret:
      description: Name of the credential Secret (never its content); null when unset.
      type: str
      sample: minio-credentials
    poll_interval:
      description: Seconds between Longhorn's polls of the store; C(0) means no polling; null when unset.
      type: int
      sample: 300
    available:
      description: Whether Longhorn reached the store (C(status.available)).
      type: bool
      sample: true
    last_synced_at:
      description: Time of the last successful sync; null when it never synced.
      type: str
      sample: "2026-11-22T01:58:00Z"
    message:
      description: When unavailable, the message of the C(Unavailable) condition; otherwise null.
      type: str
      sample: "failed to list system backups in s3://backups@us-east-1/: AccessDenied"
volumes:
  description: The Longhorn volumes, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
      sample: pvc-0123abcd-0000-4000-8000-000000000001
    size:
      description: Size in bytes (C(spec.size)).
      type: int
      sample: 1073741824
    state:
      description: C(status.state), e.g. C(attached) or C(detached).
      type: str
      sample: attached
    robustness:
      description: C(status.robustness), e.g. C(healthy), C(degraded), C(faulted).
      type: str
      sample: healthy
    actual_size:
      description:
        - C(status.actualSize), the bytes the volume's data occupies; V(0) for a volume that never held data,
          V(null) when Longhorn does not report it.
      type: int
      sample: 104857600
    access_mode:
      description: C(rwo) or C(rwx).
      type: str
      sample: rwo
    data_engine:
      description: C(v1) or C(v2).
      type: str
      sample: v1
    backup_target:
      description: The volume's C(spec.backupTargetName).
      type: str
      sample: default
    pvc_namespace:
      description: Namespace of the volume's PVC (C(status.kubernetesStatus.namespace)); null when none.
      type: str
      sample: apps
    pvc_name:
      description: Name of the volume's PVC; null when none.
      type: str
      sample: app-data
    pv_name:
      description: Name of the volume's PV; null when none.
      type: str
      sample: pvc-0123abcd-0000-4000-8000-000000000001
    pv_status:
      description: Phase of the PV (C(Bound), C(Released), ...); null when none.
      type: str
      sample: Bound
    last_pvc_ref_at:
      description: When the PVC disappeared (C(status.kubernetesStatus.lastPVCRefAt)); null while it exists.
      type: str
      sample: null
    last_backup:
      description: The volume's newest backup on the target, in any state; null when it has none.
      type: dict
      contains:
        name:
          description: Name of the Backup (also its name in the store).
          type: str
        state:
          description: C(Completed), C(Error), C(InProgress), C(Pending), C(Unknown), C(Deleting), or empty for a new one.
          type: str
        created_at:
          description: The backup's time (see the notes); null when unknown.
          type: str
        age_seconds:
          description: Seconds from RV(volumes[].last_backup.created_at) to RV(checked_at); null when unknown.
          type: int
        url:
          description: The backup URL (C(status.url)), used to restore it; null until known.
          type: str
        size:
          description: Logical size in bytes; null until known.
          type: int
        error:
          description: The backup's error message; null when none.
          type: str
        snapshot_created_at:
          description: Time of the snapshot the backup was taken from; null when unknown.
          type: str
        backup_target:
          description: The Backup's target name; null before Longhorn 1.8.
          type: str
      sample: {"name": "backup-0123456789abcdef", "state": "Completed", "created_at": "2026-11-22T01:00:00Z", "age_seconds": 3600,
               "url": "s3://backups@us-east-1/?backup=backup-0123456789abcdef&volume=pvc-1", "size": 2097152, "error": null,
               "snapshot_created_at": "2026-11-22T00:59:58Z", "backup_target": "default"}
    last_completed_backup:
      description: The volume's newest C(Completed) backup on the target, same keys as RV(volumes[].last_backup); null when none.
      type: dict
    backup_count:
      description: Number of C(Completed) backups of the volume on the target.
      type: int
      sample: 7
    recurring_jobs:
      description: Recurring jobs the volume belongs to directly (C(recurring-job.longhorn.io/<job>=enabled) labels), sorted.
      type: list
      elements: str
      sample: [nightly]
    recurring_job_groups:
      description:
        - Recurring-job groups the volume belongs to (C(recurring-job-group.longhorn.io/<group>=enabled) labels), sorted.
        - C(default) for a volume with no recurring-job or job-group label at all, as Longhorn treats it.
      type: list
      elements: str
      sample: [default]
    recurring_job_default_implicit:
      description: Whether RV(volumes[].recurring_job_groups) is C(default) because the volume has no job or group labels.
      type: bool
      sample: false
backup_volumes_not_in_cluster:
  description: Names of volumes that have Backup resources on the target but no Longhorn volume in the cluster, sorted.
  returned: always
  type: list
  elements: str
  sample: [pvc-old-volume]
system_backups:
  description: The SystemBackups, newest first (by C(status.createdAt), else the creation time of the resource).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the system backup.
      type: str
    state:
      description: C(Ready), C(Error), or a state on the way (C(CreatingVolumeBackups), C(Uploading), C(Syncing), ...).
      type: str
    created_at:
      description: C(status.createdAt) (the upload completed), else the creation time of the resource.
      type: str
    age_seconds:
      description: Seconds from RV(system_backups[].created_at) to RV(checked_at).
      type: int
    version:
      description: Longhorn version that made it; null until known.
      type: str
    volume_backup_policy:
      description: C(if-not-present), C(always) or C(disabled).
      type: str
    error:
      description: The message of its C(Error) condition; null when none.
      type: str
  sample: [{"name": "nightly", "state": "Ready", "created_at": "2026-11-22T01:00:00Z", "age_seconds": 3600, "version": "v1.10.2",
            "volume_backup_policy": "if-not-present", "error": null}]
last_ready_system_backup:
  description: The newest entry of RV(system_backups) in state C(Ready); null when there is none.
  returned: always
  type: dict
  sample: {"name": "nightly", "state": "Ready", "created_at": "2026-11-22T01:00:00Z", "age_seconds": 3600, "version": "v1.10.2",
           "volume_backup_policy": "if-not-present", "error": null}
"""

import datetime

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backup_info import build_view, settings_values
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
)


def argument_spec():
    return auth_argument_spec(
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        volumes=dict(type="list", elements="str"),
        backup_target=dict(type="str", default=DEFAULT_BACKUP_TARGET),
    )


def read_cluster(access, params):
    """One request per kind: Settings, the BackupTarget, Volumes, Backups, SystemBackups."""
    namespace = params["namespace"]
    return dict(
        settings=settings_values(access.list("Setting", API_VERSION, namespace=namespace)),
        target=access.get("BackupTarget", API_VERSION, params["backup_target"], namespace=namespace),
        volumes=access.list("Volume", API_VERSION, namespace=namespace),
        backups=access.list("Backup", API_VERSION, namespace=namespace),
        system_backups=access.list("SystemBackup", API_VERSION, namespace=namespace),
    )


def run(access, params, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    objects = read_cluster(access, params)
    view = build_view(now=now, names=params["volumes"], target_name=params["backup_target"], **objects)
    view["changed"] = False
    return view


def main():
    module = new_module(argument_spec(), supports_check_mode=True)
    try:
        result = run(K8sAccess(module), module.params)
    except LonghornError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
