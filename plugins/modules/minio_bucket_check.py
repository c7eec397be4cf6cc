#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: minio_bucket_check
short_description: Inspect a Longhorn backup bucket on MinIO or any S3 store
version_added: 1.0.0
description:
  - Reads a Longhorn backupstore over plain S3 and reports whether the backups in it can be restored.
    No Kubernetes cluster is needed, so it also works after the cluster is gone.
  - "Access: whether the endpoint answers, whether the credentials are valid (telling C(InvalidAccessKeyId),
    C(SignatureDoesNotMatch) and C(AccessDenied) apart) and whether the bucket exists."
  - "Bucket settings: versioning, object lock with its default retention, and lifecycle rules. Longhorn forbids
    retention and lifecycle policies on the backupstore, so both are reported as problems."
  - "Inventory: one entry per backup volume, read from C(volume.cfg) and a listing of the backupstore, with the
    PVC it belongs to (from the C(KubernetesStatus) label), its newest complete backup and its block counts."
  - "The quick inventory (O(integrity=none)) lists the backupstore once and reads every C(volume.cfg), but reads a
    backup cfg only when it may be incomplete: when its size is that of Longhorn's in-progress stub, or when it is
    newer than the cfg named by C(LastBackupName) (Longhorn rewrites C(volume.cfg) after every completed backup).
    It therefore does not see an incomplete cfg that is larger than a stub and not newer than the last complete
    backup, which Longhorn itself never writes, nor a backup cfg whose content is damaged.
    O(integrity=structure) and O(integrity=full) read every backup cfg and see everything."
  - "Freshness: with O(max_age), volumes whose newest complete backup is older are reported in RV(stale);
    with O(expected_volumes), the expected volumes without any complete backup are reported in RV(missing).
    An interrupted backup never makes a volume look fresh."
  - "Integrity: O(integrity=structure) checks that every block a backup cfg references exists;
    O(integrity=full) also downloads each distinct block once per volume, decompresses it with the backup's
    method (falling back between gzip and lz4 as Longhorn's restore does), compares its truncated SHA-512 with
    its name, and checks each system backup zip against its SHA-256."
  - "Capacity: bytes stored under the backupstore and a projection from the planning formula
    volume size x compression ratio x retained backups."
  - The module never changes anything, except the optional write probe (O(write_probe)), which puts, reads
    back and deletes one probe object and never runs in check mode.
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - python >= 3.11
  - boto3 >= 1.36.0
  - botocore >= 1.36.0
  - lz4 >= 4.0.0 (for O(integrity=full) on lz4-compressed backups)
extends_documentation_fragment:
  - homelab.longhorn_dr._s3_connection
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.INFO_MODULE
  - homelab.longhorn_dr._attributes.ACTIONGROUP_S3
attributes:
  check_mode:
    support: full
    details:
      - The checks only read, so check mode runs them all.
      - The write probe (O(write_probe)) is skipped in check mode; RV(write_probe.skipped_reason) says so.
options:
  write_probe:
    description:
      - Put, read back and delete a probe object C(<prefix>/backupstore/.longhorn-dr-write-probe-<random>) to prove
        the credentials can write where Longhorn writes its lock files (Longhorn needs C(s3:PutObject) and
        C(s3:DeleteObject) even to restore).
      - The upload sends no content checksum, like Longhorn 1.10, so a bucket that demands one
        (AWS S3 with an object lock default retention) refuses the probe as it would refuse Longhorn.
      - Never runs in check mode.
    type: bool
    default: false
  integrity:
    description:
      - How deeply to check the backups.
      - V(none) reads only what the inventory needs.
      - V(structure) reads every backup cfg and checks that every block it references exists (from the listing,
        no extra requests per block).
      - V(full) also downloads and verifies the blocks and the system backup zips.
    type: str
    choices: [none, structure, full]
    default: none
  integrity_sample_percent:
    description:
      - With O(integrity=full), verify only about this percentage of the blocks of each volume, like
        C(restic check --read-data-subset). Missing blocks are still found in all backups.
      - The sample is chosen from O(integrity_sample_seed); the same seed checks the same blocks.
      - An integer from 1 to 100.
    type: int
    default: 100
  integrity_sample_seed:
    description:
      - Seed of the block sample of O(integrity_sample_percent).
      - When not set, a random seed is used and returned in RV(integrity.sample_seed), so that a run can be repeated.
    type: int
  max_age:
    description:
      - Maximum age of the newest complete backup of each volume, as seconds or a duration such as
        V(90s), V(30m), V(24h), V(1d), V(2w) or V(1h30m).
      - Volumes with an older (or no) complete backup are reported in RV(stale).
      - Ages are measured against the S3 server's clock.
    type: raw
  expected_volumes:
    description:
      - Longhorn volume names that must have at least one complete backup in the bucket.
      - Those without are reported in RV(missing). When the bucket cannot be read, all of them are.
    type: list
    elements: str
  capacity_retained_backups:
    description:
      - Number of backups kept per volume for the capacity projection, for example the C(retain) of the recurring job.
      - When not set, each volume's current number of complete backups is used.
    type: int
  capacity_compression_ratio:
    description:
      - Stored size divided by raw size of a block, for the capacity projection; for example V(0.5).
      - When not set, the ratio measured in the bucket is used (RV(capacity.measured_compression_ratio)), or V(1.0)
        when the bucket has no blocks yet.
    type: float
  fail_on:
    description:
      - Fail the task, with a summary naming what failed, when any of these findings is present.
      - V(unreachable) the backupstore cannot be listed (endpoint down, credentials rejected, access denied, no bucket).
      - V(stale) a volume has no complete backup newer than O(max_age).
      - V(missing) an O(expected_volumes) entry has no complete backup in the bucket.
      - V(integrity) missing or corrupt blocks, or a system backup without its zip or with a checksum mismatch.
      - V(problems) anything in RV(problems).
      - Without it the module reports its findings and succeeds.
    type: list
    elements: str
    choices: [unreachable, stale, missing, integrity, problems]
    default: []
  concurrency:
    description:
      - How many S3 requests run at the same time.
    type: int
    default: 16
  cluster_state_prefix:
    description:
      - Also find the newest cluster-state export under this key prefix, from the bucket root (not under O(prefix)),
        as the P(homelab.longhorn_dr.cluster_state#role) role uploads them (C(<prefix><YYYYMMDDTHHMMSSZ>/manifest.json)),
        for example V(cluster-state/), and report when it was exported in RV(cluster_state).
      - The newest export is the one whose folder name sorts last; V("") looks at the bucket root.
      - No export is reported as RV(cluster_state.found=false), not as an error.
      - When not set, nothing is read and RV(cluster_state) is V(null).
    type: str
notes:
  - Backup cfgs, blocks and the layout follow Longhorn's backupstore (Longhorn 1.10); C(volume.cfg) string fields
    that Go encodes twice are decoded.
  - A lock file younger than 150 seconds means a backup, restore or deletion is running (RV(problems) kind
    C(active_lock)); an older one was left by an operation that ended without cleaning up (C(stale_lock)).
seealso:
  - name: Longhorn backup target setup
    description: Longhorn's requirements for an S3 backup target, including the ban on retention and lifecycle policies.
    link: https://longhorn.io/docs/1.10.2/snapshots-and-backups/backup-and-restore/set-backup-target/
  - name: restic check --read-data-subset
    description: The sampling idea behind O(integrity_sample_percent).
    link: https://restic.readthedocs.io/en/stable/045_working_with_repos.html#checking-integrity-and-consistency
"""

EXAMPLES = r"""
- name: Inventory the backups of the homelab bucket
  homelab.longhorn_dr.minio_bucket_check:
    endpoint_url: https://minio.example.com:9000
    access_key: "{{ minio_access_key }}"
    secret_key: "{{ minio_secret_key }}"
    bucket: longhorn-backups
  register: bucket_report

- name: Show the volumes and when they were last backed up
  ansible.builtin.debug:
    msg: "{{ item.name }} ({{ item.pvc_namespace }}/{{ item.pvc_name }}): {{ item.last_backup_at }}"
  loop: "{{ bucket_report.volumes }}"

- name: Refuse to go on unless every expected volume has a fresh, intact backup
  homelab.longhorn_dr.minio_bucket_check:
    endpoint_url: https://minio.example.com:9000
    access_key: "{{ minio_access_key }}"
    secret_key: "{{ minio_secret_key }}"
    bucket: longhorn-backups
    prefix: cluster-a
    integrity: structure
    max_age: 24h
    expected_volumes:
      - pvc-0123abcd-postgres
      - pvc-4567ef01-gitea
    fail_on: [unreachable, stale, missing, integrity]

- name: Weekly deep check of a tenth of the data, with the connection set once
  module_defaults:
    group/homelab.longhorn_dr.s3:
      endpoint_url: https://minio.example.com:9000
      access_key: "{{ minio_access_key }}"
      secret_key: "{{ minio_secret_key }}"
      bucket: longhorn-backups
  block:
    - name: Verify a sample of the blocks and every system backup zip
      homelab.longhorn_dr.minio_bucket_check:
        integrity: full
        integrity_sample_percent: 10
        write_probe: true
        capacity_retained_backups: 7
      register: deep_check

    - name: Report the capacity projection
      ansible.builtin.debug:
        msg: >-
          {{ deep_check.capacity.stored_bytes | human_readable }} stored,
          {{ deep_check.capacity.projected_bytes | human_readable }} projected,
          {{ deep_check.integrity.corrupt_blocks }} corrupt block(s)
"""

RETURN = r"""
endpoint_url:
  description: The S3 endpoint that was checked.
  returned: always
  type: str
  sample: https://minio.example.com:9000
bucket:
  description: The bucket that was checked.
  returned: always
  type: str
  sample: longhorn-backups
backupstore_prefix:
  description: The key prefix of the backupstore in the bucket.
  returned: always
  type: str
  sample: cluster-a/backupstore/
checked_at:
  description: The S3 server's time of the check (from its C(Date) header), in UTC.
  returned: always
  type: str
  sample: "2026-03-01T02:30:00Z"
access:
  description: Whether the backupstore could be listed, and if not why.
  returned: always
  type: dict
  contains:
    reachable:
      description: Whether the endpoint answered.
      type: bool
      sample: true
    credentials_valid:
      description:
        - Whether the credentials were accepted; V(false) for C(InvalidAccessKeyId), C(SignatureDoesNotMatch),
          C(InvalidToken) or missing credentials. V(true) for C(AccessDenied) (valid keys without the right).
        - V(null) when it could not be told.
      type: bool
      sample: true
    bucket_exists:
      description: Whether the bucket exists; V(false) for C(NoSuchBucket), V(null) when it could not be told.
      type: bool
      sample: true
    readable:
      description: Whether the backupstore was listed. Everything else in the result needs it.
      type: bool
      sample: true
    error_code:
      description: The S3 error code of the failure, for example C(InvalidAccessKeyId), C(SignatureDoesNotMatch), C(AccessDenied) or C(NoSuchBucket).
      type: str
      sample: SignatureDoesNotMatch
    error:
      description:
        - What failed, without any credential.
        - A listing page that says it is truncated but gives no continuation token is a failure too (error code
          C(TruncatedListing)), never the end of the listing.
      type: str
      sample: "Failed to list objects in bucket longhorn-backups: SignatureDoesNotMatch"
bucket_settings:
  description:
    - Bucket settings that matter to Longhorn.
    - A setting that cannot be read (denied, or not implemented by the store) is V(null) and a warning says why.
  returned: always
  type: dict
  contains:
    versioning:
      description: C(Enabled), C(Suspended) or C(Disabled).
      type: str
      sample: Disabled
    mfa_delete:
      description: C(Enabled) or C(Disabled).
      type: str
      sample: Disabled
    object_lock:
      description: Object lock and its default retention.
      type: dict
      sample: {"enabled": true, "default_retention": {"mode": "GOVERNANCE", "period": 30, "unit": "days"}}
    lifecycle_rules:
      description: The lifecycle rules, each with C(id), C(status), C(prefix), C(actions) and C(applies_to_backupstore).
      type: list
      elements: dict
      sample: [{"id": "expire-old", "status": "Enabled", "prefix": "", "actions": ["Expiration"], "applies_to_backupstore": true}]
write_probe:
  description: What the write probe did.
  returned: always
  type: dict
  contains:
    performed:
      description: Whether the probe ran.
      type: bool
      sample: true
    skipped_reason:
      description: Why it did not run (C(not requested) or C(check mode)).
      type: str
      sample: check mode
    key:
      description: The probe object's key.
      type: str
      sample: backupstore/.longhorn-dr-write-probe-2c1f0d6e8f0a4b5c9d7e6f5a4b3c2d1e
    put:
      description: Whether the upload succeeded.
      type: bool
      sample: true
    get:
      description: Whether the object read back unchanged.
      type: bool
      sample: true
    delete:
      description: Whether the probe object was deleted.
      type: bool
      sample: true
    ok:
      description: Whether all three steps succeeded; V(null) when the probe did not run.
      type: bool
      sample: true
    error_code:
      description: The S3 error code of the failing step.
      type: str
      sample: AccessDenied
    error:
      description: What failed.
      type: str
      sample: "Failed to put probe object backupstore/.longhorn-dr-write-probe-2c1f: AccessDenied"
volumes:
  description: One entry per backup volume with a readable C(volume.cfg), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The Longhorn volume name.
      type: str
      sample: pvc-0123abcd-postgres
    size:
      description: Volume size in bytes (of the latest backup).
      type: int
      sample: 10737418240
    pvc_namespace:
      description: Namespace of the PVC that used the volume, from the C(KubernetesStatus) label.
      type: str
      sample: databases
    pvc_name:
      description: Name of that PVC.
      type: str
      sample: postgres-data
    pv_name:
      description: Name of the PV, from the same label.
      type: str
      sample: pvc-0123abcd-postgres
    last_backup_name:
      description: The newest complete backup; V(null) when there is none.
      type: str
      sample: backup-5c7d0e1f2a3b4c5d
    last_backup_at:
      description: Snapshot time of that backup (C(LastBackupAt)), in UTC.
      type: str
      sample: "2026-03-01T02:00:04Z"
    last_backup_age:
      description:
        - Seconds between that time and RV(checked_at).
        - Negative when the backup's time lies after the S3 server's clock (clock skew); a backup more than 300 seconds
          in the future is never fresh (RV(stale)).
      type: int
      sample: 1796
    backup_count:
      description: Number of backup cfgs minus the incomplete ones.
      type: int
      sample: 7
    incomplete_backups:
      description: Backup cfgs with an empty C(CreatedTime) (in progress or aborted).
      type: int
      sample: 0
    compression:
      description: Compression method of the backup volume (C(lz4), C(gzip) or C(none)).
      type: str
      sample: lz4
    block_count:
      description: C(BlockCount) of C(volume.cfg), the distinct blocks Longhorn counts.
      type: int
      sample: 1200
    data_stored:
      description: C(BlockCount) x 2 MiB, as Longhorn reports C(DataStored).
      type: int
      sample: 2516582400
    stored_bytes:
      description: Bytes of the block objects in the bucket (compressed).
      type: int
      sample: 1102053376
    block_objects:
      description: Block objects in the bucket.
      type: int
      sample: 1200
    storage_class:
      description: StorageClass of the volume.
      type: str
      sample: longhorn
    data_engine:
      description: Data engine (C(v1) or C(v2)).
      type: str
      sample: v1
    projected_bytes:
      description: This volume's share of RV(capacity.projected_bytes).
      type: int
      sample: 37580963840
    integrity_checked:
      description:
        - Whether every backup cfg of this volume was read and its blocks checked (O(integrity=structure) or
          O(integrity=full)); V(false) with O(integrity=none).
      type: bool
      sample: true
    damaged_backups:
      description:
        - The backups of this volume that reference missing or corrupt blocks, each with C(backup), C(missing_blocks)
          and C(corrupt_blocks) (exact counts, not cut). Empty when the blocks were not checked.
      type: list
      elements: dict
      sample: [{"backup": "backup-5c7d0e1f2a3b4c5d", "missing_blocks": 1, "corrupt_blocks": 0}]
    unreadable_backups:
      description: Backups of this volume whose cfg was read but could not be decoded or downloaded.
      type: list
      elements: str
      sample: []
problems:
  description:
    - Things that stop or endanger a restore, or that Longhorn forbids, each with C(volume) (V(null) for the bucket),
      C(kind) and C(message).
    - "Kinds: C(missing_volume_cfg), C(invalid_volume_cfg), C(misplaced_volume_dir), C(missing_last_backup),
      C(invalid_backup_cfg), C(incomplete_backup) (aborted backup, no lock held), C(active_lock), C(stale_lock),
      C(lifecycle_rules), C(retention_policy), C(write_probe_failed), C(incomplete_system_backup),
      C(invalid_system_backup_cfg), C(unreadable_system_backup)."
  returned: always
  type: list
  elements: dict
  sample: [{"volume": "pvc-0123abcd-postgres", "kind": "stale_lock", "message": "1 lock file(s) left over ..."}]
system_backups:
  description: The system backups in the bucket.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: System backup name.
      type: str
      sample: before-upgrade
    version:
      description: Longhorn version that made it.
      type: str
      sample: v1.10.2
    created:
      description: Creation time, in UTC.
      type: str
      sample: "2026-03-01T01:00:00Z"
    checksum:
      description: C(not_checked) unless O(integrity=full), then C(ok) or C(mismatch); C(missing_zip) whenever the zip is absent.
      type: str
      sample: ok
    zip_size:
      description: Size of the zip in bytes.
      type: int
      sample: 48213
    backup_target_url:
      description:
        - The C(BackupTargetURL) the system backup's cfg records. A system restore downloads the zip from this URL,
          not from the current target, so a copied or renamed bucket breaks it.
      type: str
      sample: s3://longhorn-backups@us-east-1/
integrity:
  description: Results of the integrity check; counts are 0 with O(integrity=none).
  returned: always
  type: dict
  contains:
    level:
      description: The O(integrity) level.
      type: str
      sample: full
    sample_percent:
      description: The sampled percentage with O(integrity=full).
      type: int
      sample: 100
    sample_seed:
      description: The seed of the sample when fewer than 100 percent were verified.
      type: int
      sample: 1234
    checked_blocks:
      description: Blocks checked, for existence with V(structure), downloaded and verified with V(full).
      type: int
      sample: 5120
    missing_blocks:
      description: Referenced blocks that are not in the bucket.
      type: int
      sample: 0
    corrupt_blocks:
      description: Blocks that do not decompress, or whose content does not hash to their name.
      type: int
      sample: 0
    referenced_blocks:
      description: Distinct blocks (per volume) that backup cfgs reference.
      type: int
      sample: 5120
    unreferenced_blocks:
      description: Block objects no backup references (harmless leftovers of a skipped garbage collection).
      type: int
      sample: 3
    backups_read:
      description: Backup cfgs read.
      type: int
      sample: 140
    bytes_read:
      description: Block bytes downloaded.
      type: int
      sample: 10737418240
    system_backup_failures:
      description: System backups whose zip is missing or fails its checksum.
      type: int
      sample: 0
    damaged_backup_count:
      description: Backups that reference a missing or corrupt block.
      type: int
      sample: 0
    missing:
      description: Missing blocks (at most 100), each with C(volume), C(block), C(key), C(reason) and the C(backups) that reference it.
      type: list
      elements: dict
      sample: []
    corrupt:
      description: Corrupt blocks (at most 100), with the same keys as RV(integrity.missing).
      type: list
      elements: dict
      sample: []
    damaged_backups:
      description: The damaged backups (at most 100), each with C(volume) and C(backup).
      type: list
      elements: dict
      sample: []
    truncated:
      description: Whether one of the lists was cut at 100 entries.
      type: bool
      sample: false
stale:
  description: With O(max_age), the volumes without a complete backup newer than that.
  returned: always
  type: list
  elements: str
  sample: [pvc-4567ef01-gitea]
missing:
  description: With O(expected_volumes), the expected volumes without a complete backup in the bucket.
  returned: always
  type: list
  elements: str
  sample: []
capacity:
  description: Bytes stored and the projection; V(null) when the bucket could not be listed.
  returned: always
  type: dict
  contains:
    stored_bytes:
      description: Sum of the sizes of all objects under the backupstore prefix.
      type: int
      sample: 1152043008
    object_count:
      description: Objects under the backupstore prefix.
      type: int
      sample: 1452
    block_objects:
      description: Block objects of all volumes.
      type: int
      sample: 1200
    block_bytes:
      description: Bytes of those block objects.
      type: int
      sample: 1102053376
    system_backup_bytes:
      description: Bytes under C(system-backups/).
      type: int
      sample: 48213
    backing_image_bytes:
      description: Bytes under C(backing-images/).
      type: int
      sample: 0
    measured_compression_ratio:
      description: Block bytes divided by the raw size of those blocks (2 MiB each unless the backup cfgs were read).
      type: float
      sample: 0.4379
    compression_ratio:
      description: The ratio used for the projection.
      type: float
      sample: 0.4379
    retained_backups:
      description: O(capacity_retained_backups), or V(null) when each volume's backup count was used.
      type: int
      sample: 7
    projected_bytes:
      description: Sum over volumes of size x compression ratio x retained backups.
      type: int
      sample: 32920473190
cluster_state:
  description:
    - The newest cluster-state export's manifest under O(cluster_state_prefix); V(null) when that option is not set.
  returned: always
  type: dict
  contains:
    found:
      description: Whether an export's manifest was found (and read).
      type: bool
      sample: true
    exports:
      description: How many exports (folders with a C(manifest.json)) are under O(cluster_state_prefix).
      type: int
      sample: 3
    key:
      description: The newest manifest's key in the bucket; V(null) when there is none.
      type: str
      sample: cluster-state/20260301T021000Z/manifest.json
    exported_at:
      description: The manifest's C(exported_at), in UTC.
      type: str
      sample: "2026-03-01T02:10:00Z"
    age_seconds:
      description:
        - Seconds between RV(cluster_state.exported_at) and RV(checked_at) (the S3 server's clock); negative when the
          export's time lies after that clock.
      type: int
      sample: 1200
    format:
      description: The manifest's C(format), for example C(homelab.longhorn_dr/cluster-state/v1).
      type: str
      sample: homelab.longhorn_dr/cluster-state/v1
    error:
      description: Why the exports could not be listed or the manifest read or understood (S3 error, not valid JSON, no valid C(exported_at)).
      type: str
      sample: null
findings:
  description: Counts per O(fail_on) category (C(unreachable) as a boolean), whether or not O(fail_on) lists it.
  returned: always
  type: dict
  sample: {"unreachable": false, "stale": 1, "missing": 0, "integrity": 0, "problems": 2}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backupstore import HAS_LZ4, LZ4_IMPORT_ERROR
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._bucket_inventory import (
    FAIL_ON_CHOICES,
    INTEGRITY_LEVELS,
    BucketCheckError,
    BucketInspector,
    InvalidOption,
    failure_summary,
    findings,
    new_sample_seed,
    parse_max_age,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    S3_CONNECTION_ARG_SPEC,
    S3Error,
    s3_client,
)


def argument_spec():
    spec = {key: dict(value) for key, value in S3_CONNECTION_ARG_SPEC.items()}
    spec.update(
        write_probe=dict(type="bool", default=False),
        integrity=dict(type="str", choices=list(INTEGRITY_LEVELS), default="none"),
        integrity_sample_percent=dict(type="int", default=100),
        integrity_sample_seed=dict(type="int"),
        max_age=dict(type="raw"),
        expected_volumes=dict(type="list", elements="str"),
        capacity_retained_backups=dict(type="int"),
        capacity_compression_ratio=dict(type="float"),
        fail_on=dict(type="list", elements="str", choices=list(FAIL_ON_CHOICES), default=[]),
        concurrency=dict(type="int", default=16),
        cluster_state_prefix=dict(type="str"),
    )
    return spec


def check_options(params):
    """Validate what the argspec cannot express; returns max_age in seconds."""
    if not 1 <= params["integrity_sample_percent"] <= 100:
        raise InvalidOption("integrity_sample_percent: %r is not between 1 and 100" % params["integrity_sample_percent"])
    if params["concurrency"] < 1:
        raise InvalidOption("concurrency: %r is not a positive number" % params["concurrency"])
    if params["capacity_retained_backups"] is not None and params["capacity_retained_backups"] < 1:
        raise InvalidOption("capacity_retained_backups: %r is not a positive number" % params["capacity_retained_backups"])
    ratio = params["capacity_compression_ratio"]
    if ratio is not None and not 0 < ratio <= 10:
        raise InvalidOption("capacity_compression_ratio: %r is not a ratio above 0 (stored size / raw size)" % ratio)
    return parse_max_age(params["max_age"])


def option_warnings(params, max_age):
    fail_on = params["fail_on"]
    warnings = []
    if "stale" in fail_on and max_age is None:
        warnings.append("fail_on contains stale but max_age is not set, so no volume can be stale")
    if "missing" in fail_on and not params["expected_volumes"]:
        warnings.append("fail_on contains missing but expected_volumes is empty, so no volume can be missing")
    if "integrity" in fail_on and params["integrity"] == "none":
        warnings.append("fail_on contains integrity but integrity=none: only system backups without their zip can fail it; "
                        "use integrity=structure or integrity=full to check the blocks")
    return warnings


def run_check(module, max_age):
    params = module.params
    seed = params["integrity_sample_seed"]
    if seed is None and params["integrity"] == "full" and params["integrity_sample_percent"] < 100:
        seed = new_sample_seed()
    # No content checksum on uploads, as Longhorn 1.10 sends none (ref §3.3 Object Lock / WORM).
    try:
        client = s3_client(params, max_pool_connections=params["concurrency"],
                           extra_config={"request_checksum_calculation": "when_required",
                                         "response_checksum_validation": "when_required"})
    except ValueError as exc:
        # botocore refuses a malformed endpoint_url with a ValueError naming it.
        raise BucketCheckError("Invalid S3 connection options: %s" % exc, code="InvalidEndpoint") from None
    inspector = BucketInspector(client, params["bucket"], params["prefix"], concurrency=params["concurrency"])
    probe = params["write_probe"] and not module.check_mode
    result = inspector.run(
        integrity=params["integrity"],
        sample_percent=params["integrity_sample_percent"],
        sample_seed=seed,
        max_age=max_age,
        expected_volumes=params["expected_volumes"],
        write_probe=probe,
        retained_backups=params["capacity_retained_backups"],
        compression_ratio=params["capacity_compression_ratio"],
        cluster_state_prefix=params["cluster_state_prefix"],
    )
    if params["write_probe"] and module.check_mode:
        result["write_probe"]["skipped_reason"] = "check mode"
    for warning in inspector.warnings:
        module.warn(warning)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO3_IMPORT_ERROR)
    if module.params["integrity"] == "full" and not HAS_LZ4:
        module.fail_json(msg=missing_required_lib("lz4"), exception=LZ4_IMPORT_ERROR)
    facts = {"changed": False, "endpoint_url": module.params["endpoint_url"], "bucket": module.params["bucket"]}
    try:
        max_age = check_options(module.params)
        for warning in option_warnings(module.params, max_age):
            module.warn(warning)
        result = run_check(module, max_age)
    except InvalidOption as exc:
        module.fail_json(msg=str(exc), **facts)
    except (BucketCheckError, S3Error) as exc:
        module.fail_json(msg=str(exc), error_code=exc.code, exception=traceback.format_exc(), **facts)
    facts.update(result)
    facts["findings"] = findings(result)
    summary = failure_summary(result, module.params["fail_on"], max_age)
    if summary:
        module.fail_json(msg=summary, **facts)
    module.exit_json(**facts)


if __name__ == "__main__":
    main()
