#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: longhorn_backup_target
short_description: Manage the Longhorn backup target and its credential Secret
version_added: 1.0.0
description:
  - Points Longhorn at a backup store (S3/MinIO, NFS, CIFS or Azure Blob) and optionally manages the credential Secret it reads.
  - On Longhorn 1.8 and later it manages the C(BackupTarget) custom resource named O(name) (C(spec.backupTargetURL),
    C(spec.credentialSecret), C(spec.pollInterval)).
  - On Longhorn 1.7 and earlier, detected from the C(current-longhorn-version) Setting, it writes the Settings
    C(backup-target), C(backup-target-credential-secret) and C(backupstore-poll-interval), which Longhorn copies into
    the C(default) BackupTarget. Only O(name=default) exists there.
  - Only the fields you set are compared and changed. C(spec.syncRequestedAt) is never compared, because Longhorn
    rewrites it on every poll.
  - Warns when the C(longhorn-default-resource) ConfigMap (Helm C(defaultBackupStore.*)) carries backup-target keys,
    because the manager copies them over the C(default) BackupTarget at its next start.
  - B(Check before writing.) Before it writes anything, the module checks a new or changed s3 target over plain S3
    from the controller, as Longhorn will use it - see O(validate_target). A refused target writes nothing.
  - B(Rollback.) When the run wrote something and then fails - Longhorn reports the target unavailable within
    O(wait_timeout), or a later write is refused - the module restores the credential Secret's C(data) and the
    BackupTarget's C(spec) (or the Settings on Longhorn 1.7) to what they were before the run, removes a Secret or a
    named BackupTarget that the run created, and fails with Longhorn's condition message and what was rolled back.
    Deleting a BackupTarget never deletes backups in the bucket (Longhorn removes only its own custom resources).
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
  - boto3 (for O(validate_target=true) with an s3 target)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.ACTIONGROUP_LONGHORN
attributes:
  check_mode:
    support: full
    details:
      - Writes are sent as server-side dry runs, so the API server and Longhorn's webhooks still validate them; nothing is stored and nothing is waited for.
  diff_mode:
    support: full
    details:
      - The diff shows the managed BackupTarget (or Settings) fields and the names of the managed Secret keys; Secret values are masked as C(********).
  idempotent:
    support: partial
    details:
      - Idempotent unless O(sync=true), which writes C(spec.syncRequestedAt) on every run and therefore always reports a change.
options:
  name:
    description:
      - Name of the BackupTarget. Longhorn's own target is C(default); other names need Longhorn 1.8 or later.
    type: str
    default: default
  namespace:
    description:
      - The Longhorn namespace, where the BackupTarget, the Settings and the credential Secret live.
    type: str
    default: longhorn-system
  state:
    description:
      - V(present) configures the target.
      - V(absent) deletes a named BackupTarget. Longhorn refuses to delete C(default), so for C(default) (and on Longhorn 1.7
        and earlier) V(absent) clears the URL and the credential Secret name instead; Longhorn then marks the target
        unavailable and drops the backup CRs of that target (remote data is kept).
      - V(absent) never deletes the credential Secret, which other targets may share.
    type: str
    choices: [present, absent]
    default: present
  url:
    description:
      - The backup target URL, for example C(s3://backups@us-east-1/) or C(s3://backups@us-east-1/cluster-a/).
      - An s3 URL must name the region (C(us-east-1) for MinIO) and end with C(/); the module refuses other forms before writing anything.
      - Forms that Longhorn only tolerates (upper case, a trailing C(/) on nfs) give a warning.
      - Leave it out to keep the current URL. V("") unsets it.
    type: str
  credential_secret:
    description:
      - Name of the Secret in O(namespace) with the store's credentials. Required when any credential value is given.
      - Leave it out to keep the current name.
    type: str
  access_key:
    description:
      - C(AWS_ACCESS_KEY_ID) written to the credential Secret. Leading and trailing whitespace is removed.
    type: str
  secret_key:
    description:
      - C(AWS_SECRET_ACCESS_KEY) written to the credential Secret. Leading and trailing whitespace is removed.
    type: str
  endpoints:
    description:
      - C(AWS_ENDPOINTS) written to the credential Secret, for example C(https://minio.example:9000). Needed for any store that is not AWS.
    type: str
  cert:
    description:
      - C(AWS_CERT), the PEM of the store's CA or certificate chain, written without a trailing newline (Longhorn rejects one).
      - A certificate is public, but it is handled like the other values (C(no_log), masked in the diff) so a pasted bundle
        that holds more than it should never reaches a log.
    type: str
  virtual_hosted_style:
    description:
      - C(VIRTUAL_HOSTED_STYLE) in the credential Secret. V(true) forces virtual-hosted addressing, V(false) path style.
    type: bool
  poll_interval:
    description:
      - How often Longhorn polls the store, as seconds (V(300)) or a Go duration (V(5m0s)). V(0) turns polling off.
      - Compared normalized, so V(300) and V(5m0s) are the same.
      - Leave it out to keep the current interval; a new named target gets V(300).
    type: raw
  sync:
    description:
      - Request an immediate sync by setting C(spec.syncRequestedAt) to now. This is a write, so the module reports a change.
    type: bool
    default: false
  wait:
    description:
      - Wait until the target is available and, after a change or a sync request, until it has synced again.
      - Never waits in check mode or when the URL is empty.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait. On timeout the module fails with the target's C(Unavailable) condition message.
    type: int
    default: 600
  wait_sleep:
    description:
      - Seconds between two reads while waiting.
    type: int
    default: 2
  validate_target:
    description:
      - Check an s3 target over plain S3 before writing anything, when the URL, the credential Secret name or its
        values change (also in check mode; it only reads).
      - The check uses what the Secret will hold after the run (its current keys with the given values over them), that is the
        access and secret key, C(AWS_ENDPOINTS) (AWS S3 when unset), C(AWS_CERT) as the CA bundle, the region from
        O(url), and the addressing Longhorn uses (path style when an endpoint is set, unless
        O(virtual_hosted_style=true)). It lists C(<prefix>/backupstore/) in the bucket once; an empty listing is fine.
      - Wrong keys (C(InvalidAccessKeyId), C(SignatureDoesNotMatch)), a missing bucket (C(NoSuchBucket)), a wrong
        region (C(AuthorizationHeaderMalformed)), missing list rights (C(AccessDenied)) and an unreachable endpoint
        each fail with their own message, which names the option and the value (never a credential).
      - V(false) skips the check, with a warning, for a controller that cannot reach the store (only the cluster
        can). The rollback after the wait still protects a working target then.
      - nfs, cifs and azblob targets, and a Secret with C(AWS_IAM_ROLE_ARN) and no keys, cannot be checked from the
        controller; they are written with a warning and Longhorn's wait is the check.
    type: bool
    default: true
notes:
  - A BackupTarget with the same URL as another one is refused by Longhorn.
  - The wait compares C(status.lastSyncedAt), which has whole seconds, with the local clock; keep the controller's clock in sync with the cluster.
  - The S3 check runs from the controller with its network and proxy settings, not the Secret's C(HTTPS_PROXY).
  - The rollback restores C(spec.syncRequestedAt) to now rather than its old value, so that Longhorn checks the restored
    target at once; Longhorn rewrites that field on every poll anyway.
seealso:
  - name: Setting a backup target (Longhorn documentation)
    description: URL forms and the credential Secret keys.
    link: https://longhorn.io/docs/1.10.2/snapshots-and-backups/backup-and-restore/set-backup-target/
"""

EXAMPLES = r"""
- name: Point Longhorn at a MinIO bucket and wait until the target is synced
  homelab.longhorn_dr.longhorn_backup_target:
    url: s3://longhorn-backups@us-east-1/
    credential_secret: longhorn-backup-credentials
    access_key: "{{ vault_minio_access_key }}"
    secret_key: "{{ vault_minio_secret_key }}"
    endpoints: https://minio.example.com:9000
    poll_interval: 5m0s
  no_log: true
  register: backup_target

- name: Show whether the target is available
  ansible.builtin.debug:
    msg: "available={{ backup_target.result.status.available }} lastSyncedAt={{ backup_target.result.status.lastSyncedAt }}"

- name: Set options once for every Longhorn module of the collection
  module_defaults:
    group/homelab.longhorn_dr.longhorn:
      kubeconfig: ~/.kube/homelab
      context: homelab
  block:
    - name: Ask Longhorn to sync the default target now
      homelab.longhorn_dr.longhorn_backup_target:
        sync: true

    - name: Add a second target for an NFS server (Longhorn 1.8 or later)
      homelab.longhorn_dr.longhorn_backup_target:
        name: nfs-offsite
        url: nfs://nas.example.com:/export/longhorn
        poll_interval: 600

- name: Configure a target that only the cluster can reach (no S3 check from here; rolled back if Longhorn reports it unavailable)
  homelab.longhorn_dr.longhorn_backup_target:
    url: s3://longhorn-backups@us-east-1/
    credential_secret: longhorn-backup-credentials
    access_key: "{{ vault_minio_access_key }}"
    secret_key: "{{ vault_minio_secret_key }}"
    endpoints: http://minio.longhorn-system.svc:9000
    validate_target: false
  no_log: true

- name: Unset the default target (Longhorn keeps the CR and the remote data)
  homelab.longhorn_dr.longhorn_backup_target:
    state: absent
"""

RETURN = r"""
result:
  description:
    - The BackupTarget as read after the change (without C(metadata.managedFields)). On Longhorn 1.7 and earlier this is
      the C(default) BackupTarget that Longhorn derives from the Settings.
    - Empty after O(state=absent) deleted a named target, and in check mode when the target does not exist yet.
  returned: always
  type: dict
  sample:
    apiVersion: longhorn.io/v1beta2
    kind: BackupTarget
    metadata:
      name: default
      namespace: longhorn-system
    spec:
      backupTargetURL: s3://longhorn-backups@us-east-1/
      credentialSecret: longhorn-backup-credentials
      pollInterval: 5m0s
    status:
      available: true
      lastSyncedAt: "2026-01-02T03:04:05Z"
  contains:
    spec:
      description: The spec as Longhorn stores it.
      type: dict
      returned: when the target exists
    status:
      description: C(available), C(conditions), C(lastSyncedAt) and C(ownerID).
      type: dict
      returned: when the target exists
legacy_settings:
  description: Whether the Longhorn 1.7 (and earlier) Settings were managed instead of the BackupTarget.
  returned: always
  type: bool
  sample: false
longhorn_version:
  description: The C(current-longhorn-version) Setting, empty when it is missing.
  returned: always
  type: str
  sample: v1.10.2
secret_changed_keys:
  description: Names (never values) of the credential Secret keys that were written or would be written.
  returned: always
  type: list
  elements: str
  sample: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]
sync_requested:
  description: Whether C(spec.syncRequestedAt) was written, because of O(sync) or because only the Secret changed.
  returned: always
  type: bool
  sample: false
target_check:
  description:
    - The S3 check of the new target (O(validate_target)), also on failure.
    - C(performed) says whether the bucket was listed; C(skipped_reason) why not (the target does not change,
      V(validate_target=false), a scheme other than s3, an IAM role).
    - On a refusal it also holds C(error_kind) (region, credentials, denied, missing_bucket, unreachable, error) and
      C(error_code), the S3 error code.
  returned: always
  type: dict
  sample:
    performed: true
    skipped_reason: null
    url: s3://longhorn-backups@us-east-1/
    region: us-east-1
    endpoint: https://minio.example.com:9000
    prefix: backupstore/
    addressing_style: path
rollback:
  description:
    - What a failed run gave back after it had written something. C(restored) and C(removed) name the objects
      (never values); C(error) says what could not be restored; C(previous_available) whether the previous target was
      available again within O(wait_timeout) (null when there was no previous URL or O(wait=false)).
  returned: on failure after a write
  type: dict
  sample:
    performed: true
    restored: ["Secret creds data (AWS_SECRET_ACCESS_KEY)", "BackupTarget default spec (backupTargetURL)"]
    removed: []
    error: null
    previous_available: true
duration:
  description: Seconds the module spent, including the wait.
  returned: always
  type: float
  sample: 3.2
diff:
  description: Before and after of the managed fields; Secret values are masked.
  returned: when diff mode is on and something changed
  type: dict
  sample:
    before:
      target: {backupTargetURL: "", credentialSecret: "", pollInterval: 5m0s}
      secret: null
    after:
      target: {backupTargetURL: "s3://longhorn-backups@us-east-1/", credentialSecret: creds, pollInterval: 5m0s}
      secret: {name: creds, data: {AWS_ACCESS_KEY_ID: "******** (changed)"}}
"""

import copy
import datetime
import os
import tempfile
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backup_target as bt
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    WaitTimeout,
    auth_argument_spec,
    new_module,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import BOTO3_IMPORT_ERROR, HAS_BOTO3, s3_client
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_BACKUP_TARGET,
    DEFAULT_NAMESPACE,
    InvalidValue,
    parse_backup_target_url,
    uses_backup_target_settings,
)

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

DEFAULT_POLL_SECONDS = 300.0


def argument_spec():
    return auth_argument_spec(
        name=dict(type="str", default=DEFAULT_BACKUP_TARGET),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        url=dict(type="str"),
        credential_secret=dict(type="str", no_log=False),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        endpoints=dict(type="str"),
        cert=dict(type="str", no_log=True),
        virtual_hosted_style=dict(type="bool"),
        poll_interval=dict(type="raw"),
        sync=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        wait_sleep=dict(type="int", default=2),
        validate_target=dict(type="bool", default=True),
    )


MODULE_KWARGS = dict(
    supports_check_mode=True,
    required_by={
        "access_key": "credential_secret",
        "secret_key": "credential_secret",
        "endpoints": "credential_secret",
        "cert": "credential_secret",
        "virtual_hosted_style": "credential_secret",
    },
    required_together=[("access_key", "secret_key")],
)


def clean(obj):
    """An API object for results: no managedFields."""
    if not obj:
        return {}
    obj = dict(obj)
    metadata = dict(obj.get("metadata") or {})
    metadata.pop("managedFields", None)
    obj["metadata"] = metadata
    return obj


class BackupTargetManager:
    """read -> normalize -> compare -> write -> wait, for the CR (>= 1.8) or the Settings (<= 1.7)."""

    def __init__(self, module, access, clock=time.time, s3_factory=None, s3_sleep=None):
        self.module = module
        self.k8s = access
        self.params = module.params
        self.namespace = self.params["namespace"]
        self.name = self.params["name"]
        self.clock = clock
        self.s3_factory = s3_factory or s3_client
        self.s3_sleep = s3_sleep
        self.warnings = []
        self.version = ""
        self.legacy = False
        self.settings_before = {}
        self.secret_changed_preview = []
        # Set by the first real (not dry-run) write: a failure after it reports changed and rolls back.
        self.wrote = False
        self.before = None
        self.target_check = None
        self.applied = dict(secret_keys=[], secret_created=False, target_fields=[], target_created=False, settings=[])

    # --- reads -------------------------------------------------------------------------------------

    def get_target(self):
        return self.k8s.get("BackupTarget", API_VERSION, self.name, namespace=self.namespace)

    def detect_version(self):
        setting = self.k8s.get("Setting", API_VERSION, bt.VERSION_SETTING, namespace=self.namespace)
        self.version = str((setting or {}).get("value") or "")
        # Without the Setting assume a current Longhorn: the Settings path is the exception (ref §1.2).
        self.legacy = bool(self.version) and uses_backup_target_settings(self.version)

    def read_settings(self):
        values = {}
        for name in bt.LEGACY_SETTINGS:
            setting = self.k8s.get("Setting", API_VERSION, name, namespace=self.namespace)
            if setting is None:
                raise LonghornError("Failed to get Setting %s: Longhorn %s should have it (ref: backup target Settings up to v1.7)"
                                    % (name, self.version))
            values[name] = str(setting.get("value") or "")
        return values

    def warn_about_configmap(self):
        configmap = self.k8s.get("ConfigMap", "v1", bt.DEFAULT_RESOURCE_CONFIGMAP, namespace=self.namespace)
        keys = bt.configmap_backup_keys(configmap, yaml.safe_load)
        if keys:
            # ref §1.2: the manager applies these keys over BackupTarget default at every start.
            self.warnings.append(
                "ConfigMap %s/%s sets %s in %s: Longhorn copies them over BackupTarget default at the next manager restart, "
                "undoing this module's changes. Manage the target in one place (remove Helm's defaultBackupStore values or "
                "set them to the same values)." % (self.namespace, bt.DEFAULT_RESOURCE_CONFIGMAP, ", ".join(keys), bt.DEFAULT_RESOURCE_KEY))

    # --- the credential Secret ---------------------------------------------------------------------

    def ensure_secret(self, secret_name, wanted, secret):
        """Create or patch the Secret read before as ``secret``; returns ``(changed_keys, keys_before, existed)``.
        Values never leave this method."""
        current = bt.decode_secret_data(secret)
        changed_keys = bt.changed_secret_keys(current, wanted)
        if secret is None:
            body = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": secret_name, "namespace": self.namespace},
                "data": bt.encode_secret_data(wanted),
            }
            self.applied["secret_created"] = True
            try:
                self._write(self.k8s.create, "Secret", "v1", body, namespace=self.namespace)
                return changed_keys, sorted(current), False
            except LonghornError as exc:
                if exc.details.get("status") != 409:
                    raise
                # Another run created it between our read and this create: it is not ours to roll
                # back; take it over as an existing Secret.
                self.applied["secret_created"] = False
                secret = self.k8s.get("Secret", "v1", secret_name, namespace=self.namespace)
                if secret is None:
                    raise
                current = bt.decode_secret_data(secret)
                changed_keys = bt.changed_secret_keys(current, wanted)
        if changed_keys:
            patch = {"data": bt.encode_secret_data({key: wanted[key] for key in changed_keys})}
            self.applied["secret_keys"] = list(changed_keys)
            self._write(self.k8s.merge_patch, "Secret", "v1", secret_name, patch, namespace=self.namespace)
        return changed_keys, sorted(current), secret is not None

    # --- the whole run -----------------------------------------------------------------------------

    def validate(self):
        """Check the URL and the interval before any request, so a bad value writes nothing; returns the interval in seconds."""
        params = self.params
        if params["state"] == "absent":
            return None
        if params["url"] is not None:
            try:
                _info, url_warnings = parse_backup_target_url(params["url"])
            except InvalidValue as exc:
                raise LonghornError("url: %s" % exc) from None
            self.warnings.extend(url_warnings)
        try:
            return bt.normalize_poll_interval(params["poll_interval"])
        except InvalidValue as exc:
            raise LonghornError("poll_interval: %s" % exc) from None

    def desired(self, current, exists, poll):
        params = self.params
        if params["state"] == "absent":
            return bt.desired_view(current, url="", credential_secret="")
        if poll is None and not exists:
            poll = DEFAULT_POLL_SECONDS  # ref §1.1: a CR created by hand has no webhook default, 0 would mean never poll
        return bt.desired_view(current, url=params["url"], credential_secret=params["credential_secret"], poll_seconds=poll)

    # --- the S3 check of the new target ----------------------------------------------------------

    def check_new_target(self, current, desired, exists, secret_values, secret_name):
        """Check the target the run would leave over plain S3 before anything is written (read-only, also in check mode).

        Only when the URL, the credential Secret name or its values change: a target that stays the same is
        Longhorn's to report. Returns the ``target_check`` result; raises LonghornError naming the bad option.
        """
        url = desired.get("backupTargetURL") or ""
        report = dict(performed=False, skipped_reason=None, url=url, region=None, endpoint=None, prefix=None, addressing_style=None)
        touched = (not exists or url != current.get("backupTargetURL") or desired.get("credentialSecret") != current.get("credentialSecret")
                   or bool(self.secret_changed_preview))
        if not url or not touched:
            report["skipped_reason"] = "the target does not change" if url else "no URL"
            return report
        info, _warnings = parse_backup_target_url(url)
        if info["scheme"] != "s3":
            report["skipped_reason"] = "only s3 targets are checked before writing"
            self.warnings.append("validate_target: the %s target %s cannot be checked from the controller; Longhorn's wait is the "
                                 "check (a target it reports unavailable is rolled back)" % (info["scheme"], url))
            return report
        if not self.params["validate_target"]:
            report["skipped_reason"] = "validate_target=false"
            self.warnings.append("validate_target=false: the new target %s was not checked over S3 before writing; a target "
                                 "Longhorn reports unavailable within the wait is rolled back" % url)
            return report
        endpoint = secret_values.get("AWS_ENDPOINTS") or ""
        report.update(region=info["region"], endpoint=endpoint or None, prefix=bt.backupstore_root(info["prefix"]),
                      addressing_style=bt.s3_addressing_style(secret_values))
        if not secret_name:
            raise LonghornError("credential_secret: the s3 target %s needs a credential Secret, none is set; give credential_secret "
                                "with access_key and secret_key (or validate_target=false)" % url, target_check=report)
        missing = bt.missing_s3_keys(secret_values)
        if missing:
            raise LonghornError("access_key/secret_key: the credential Secret %r would have no %s, which Longhorn needs for the s3 "
                                "target %s; give access_key and secret_key (or validate_target=false when another tool fills the "
                                "Secret later)" % (secret_name, " and ".join(missing), url), target_check=report)
        if not secret_values.get("AWS_ACCESS_KEY_ID"):
            report["skipped_reason"] = "AWS_IAM_ROLE_ARN: the role's credentials exist only in the cluster"
            self.warnings.append("validate_target: Secret %r uses AWS_IAM_ROLE_ARN, which the controller cannot assume; the target "
                                 "was not checked before writing" % secret_name)
            return report
        if not HAS_BOTO3:
            raise LonghornError(missing_required_lib("boto3") + " (validate_target checks the new target over S3; or set "
                                "validate_target=false)", exception=BOTO3_IMPORT_ERROR, target_check=report)
        credentials = [secret_values.get("AWS_ACCESS_KEY_ID"), secret_values.get("AWS_SECRET_ACCESS_KEY")]
        ca_file = None
        try:
            if secret_values.get("AWS_CERT"):
                handle, ca_file = tempfile.mkstemp(prefix="longhorn-dr-ca-", suffix=".pem")
                with os.fdopen(handle, "w") as stream:
                    stream.write(secret_values["AWS_CERT"] + "\n")
            client = self.s3_factory(
                dict(endpoint_url=endpoint or None, access_key=credentials[0], secret_key=credentials[1], region=info["region"],
                     validate_certs=True, ca_bundle=ca_file),
                addressing_style=report["addressing_style"], read_timeout=15)
            bt.check_s3_target(client, url, info, secret_name, endpoint, sleep=self.s3_sleep)
        except bt.TargetCheckError as exc:
            report.update(performed=True, error_kind=exc.kind, error_code=exc.code)
            raise LonghornError("The new backup target was not written: " + bt.scrub(str(exc), credentials), target_check=report) from None
        finally:
            if ca_file:
                os.unlink(ca_file)
        report["performed"] = True
        return report

    # --- writes (recorded, so a failure reports changed and can be rolled back) -------------------

    def _write(self, func, *args, **kwargs):
        result = func(*args, **kwargs)
        if not self.module.check_mode:
            self.wrote = True
        return result

    def snapshot(self, target, secret, secret_name):
        """What a rollback gives back: the target's spec (or the Settings) and the Secret's data, as stored."""
        self.before = dict(
            target_exists=target is not None, target_spec=copy.deepcopy((target or {}).get("spec") or {}),
            settings=dict(self.settings_before) if self.legacy else None,
            secret_name=secret_name, secret_exists=secret is not None,
            secret_data=copy.deepcopy((secret or {}).get("data") or {}),
        )
        self.applied = dict(secret_keys=[], secret_created=False, target_fields=[], target_created=False, settings=[])

    def roll_back(self):
        """Restore the Secret data and the BackupTarget spec (or Settings) of before the run; remove what the run created.

        The Secret goes first, so that Longhorn's next look at the restored target sees the restored keys; a created
        target goes before a created Secret, so that Longhorn never sees it without its Secret. Never raises: returns
        the ``rollback`` result, whose ``error`` says what could not be restored.
        """
        before, applied = self.before, self.applied
        report = dict(performed=True, restored=[], removed=[], error=None, previous_available=None)
        secret_name = before["secret_name"]
        try:
            if applied["target_created"]:
                self.k8s.delete("BackupTarget", API_VERSION, self.name, namespace=self.namespace)
                report["removed"].append("BackupTarget %s" % self.name)
            if applied["secret_created"]:
                self.k8s.delete("Secret", "v1", secret_name, namespace=self.namespace)
                report["removed"].append("Secret %s" % secret_name)
            elif applied["secret_keys"]:
                self.k8s.merge_patch("Secret", "v1", secret_name, bt.secret_restore_patch(before["secret_data"], applied["secret_keys"]),
                                     namespace=self.namespace)
                report["restored"].append("Secret %s data (%s)" % (secret_name, ", ".join(sorted(applied["secret_keys"]))))
            for setting_name in applied["settings"]:
                self.k8s.merge_patch("Setting", API_VERSION, setting_name, {"value": before["settings"][setting_name]},
                                     namespace=self.namespace)
                report["restored"].append("Setting %s" % setting_name)
            if before["target_exists"] and not applied["target_created"]:
                patch = bt.spec_restore_patch(before["target_spec"], applied["target_fields"])
                # A sync request makes Longhorn check the restored target now instead of at its next poll.
                patch["syncRequestedAt"] = bt.rfc3339(self.now())
                self.k8s.merge_patch("BackupTarget", API_VERSION, self.name, {"spec": patch}, namespace=self.namespace)
                if applied["target_fields"]:
                    report["restored"].append("BackupTarget %s spec (%s)" % (self.name, ", ".join(applied["target_fields"])))
        except LonghornError as exc:
            report["error"] = str(exc)
            return report
        previous_url = before["settings"].get(bt.SETTING_URL) if self.legacy else before["target_spec"].get("backupTargetURL")
        if previous_url and before["target_exists"] and self.params["wait"]:
            try:
                self.k8s.wait_for("BackupTarget", API_VERSION, [self.name], lambda obj: (obj.get("status") or {}).get("available") is True,
                                  namespace=self.namespace, timeout=self.params["wait_timeout"], sleep=self.params["wait_sleep"])
                report["previous_available"] = True
            except LonghornError:
                report["previous_available"] = False
        return report

    @staticmethod
    def rollback_sentence(report):
        if report["error"]:
            done = "; ".join(report["restored"] + ["removed " + item for item in report["removed"]]) or "nothing"
            return (" The rollback failed (%s) after restoring: %s. Check the credential Secret and the BackupTarget by hand."
                    % (report["error"], done))
        parts = []
        if report["restored"]:
            parts.append("restored " + "; ".join(report["restored"]) + " to their values before this run")
        if report["removed"]:
            parts.append("removed what this run created (" + "; ".join(report["removed"]) + "; the bucket is untouched)")
        text = " Rolled back: %s." % ", and ".join(parts) if parts else ""
        if report["previous_available"] is True:
            text += " The previous target is available again."
        elif report["previous_available"] is False:
            text += " The previous target did not become available again within the wait."
        return text

    def run(self):
        started = time.monotonic()
        try:
            return self._run(started)
        except LonghornError as exc:
            if self.target_check is not None:
                exc.details.setdefault("target_check", self.target_check)
            if self.wrote:
                report = self.roll_back()
                exc.details["rollback"] = report
                exc.args = (str(exc) + self.rollback_sentence(report),)
            raise

    def _run(self, started):
        params = self.params
        poll = self.validate()
        self.detect_version()
        if self.legacy and self.name != DEFAULT_BACKUP_TARGET:
            raise LonghornError("Longhorn %s has only the default backup target (named targets need 1.8 or later); got name %r"
                                % (self.version, self.name))
        if not self.legacy and self.name == DEFAULT_BACKUP_TARGET:
            self.warn_about_configmap()

        target = self.get_target()
        if self.legacy:
            self.settings_before = self.read_settings()
            current = bt.legacy_view(self.settings_before)
            exists = True
        else:
            exists = target is not None
            current = bt.target_view((target or {}).get("spec"))
        previous_synced = ((target or {}).get("status") or {}).get("lastSyncedAt")

        absent = params["state"] == "absent"
        delete_named = absent and not self.legacy and self.name != DEFAULT_BACKUP_TARGET
        desired = self.desired(current, exists, poll)

        wanted_secret = bt.secret_values(params) if not absent else {}
        secret_name = desired.get("credentialSecret") or ""
        # Read only when it is written or checked: a target whose Secret is managed elsewhere needs no Secret rights otherwise.
        read_secret = secret_name and not absent and (wanted_secret or params["validate_target"])
        secret = self.k8s.get("Secret", "v1", secret_name, namespace=self.namespace) if read_secret else None
        secret_now = bt.decode_secret_data(secret)
        self.secret_changed_preview = bt.changed_secret_keys(secret_now, wanted_secret)
        target_check = dict(performed=False, skipped_reason="state=absent")
        if not absent:
            target_check = self.check_new_target(current, desired, exists, dict(secret_now, **wanted_secret), secret_name)
        self.target_check = target_check
        self.snapshot(target, secret, secret_name)

        changed_at = None
        changed = False
        secret_changed_keys = []
        secret_before = secret_after = None
        if wanted_secret:
            changed_at = changed_at or self.now()
            secret_changed_keys, keys_before, existed = self.ensure_secret(params["credential_secret"], wanted_secret, secret)
            if secret_changed_keys:
                changed = True
                if existed:
                    secret_before = bt.masked_secret_view(params["credential_secret"], keys_before)
                secret_after = bt.masked_secret_view(params["credential_secret"], set(keys_before) | set(wanted_secret),
                                                     secret_changed_keys, after=True)

        result_obj = None
        target_changed = False
        sync_requested = False
        if delete_named:
            if exists:
                changed = target_changed = True
                self._write(self.k8s.delete, "BackupTarget", API_VERSION, self.name, namespace=self.namespace)
            after_view = None
        else:
            after_view = desired
            if self.legacy:
                changes = bt.settings_patch(current, desired)
                for setting_name, value in sorted(changes.items()):
                    changed_at = changed_at or self.now()
                    self.applied["settings"].append(setting_name)
                    self._write(self.k8s.merge_patch, "Setting", API_VERSION, setting_name, {"value": value}, namespace=self.namespace)
                target_changed = bool(changes)
            elif not exists:
                changed_at = self.now()
                body = {
                    "apiVersion": API_VERSION, "kind": "BackupTarget",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": bt.spec_patch({}, desired),
                }
                body["spec"].setdefault("backupTargetURL", "")
                self.applied["target_created"] = True
                result_obj = self._write(self.k8s.create, "BackupTarget", API_VERSION, body, namespace=self.namespace)
                target_changed = True
            else:
                patch = bt.spec_patch(current, desired)
                if patch:
                    changed_at = changed_at or self.now()
                    self.applied["target_fields"] = sorted(patch)
                    result_obj = self._write(self.k8s.merge_patch, "BackupTarget", API_VERSION, self.name, {"spec": patch},
                                             namespace=self.namespace)
                    target_changed = True
            changed = changed or target_changed
            # Longhorn syncs an already-synced target again only when syncRequestedAt is newer than lastSyncedAt
            # (ref §1.1), so a changed target or a new Secret value would wait for the poll timer: ask now.
            if (params["sync"] or (secret_changed_keys and not target_changed) or (target_changed and not self.legacy)) and not absent and exists:
                moment = self.now()
                changed_at = changed_at or moment
                result_obj = self._write(self.k8s.merge_patch, "BackupTarget", API_VERSION, self.name,
                                         {"spec": {"syncRequestedAt": bt.rfc3339(moment)}}, namespace=self.namespace)
                sync_requested = changed = True

        if self.module.check_mode:
            if result_obj is None and not delete_named:
                result_obj = self.get_target()
        elif not delete_named:
            # Only a change this run made is rolled back when Longhorn reports the target unavailable.
            result_obj = self.maybe_wait(desired, changed_at if changed else None, previous_synced)

        result = dict(
            changed=changed,
            result=clean(result_obj) if not delete_named else {},
            legacy_settings=self.legacy,
            longhorn_version=self.version,
            secret_changed_keys=secret_changed_keys,
            sync_requested=sync_requested,
            target_check=target_check,
        )
        if self.module._diff and changed:
            result["diff"] = dict(
                before=dict(target=bt.display_view(current) if exists else None, secret=secret_before),
                after=dict(target=bt.display_view(after_view) if after_view is not None else None,
                           secret=secret_after or secret_before),
            )
        result["duration"] = round(time.monotonic() - started, 3)
        return result

    def now(self):
        return datetime.datetime.fromtimestamp(self.clock(), tz=datetime.timezone.utc)

    def maybe_wait(self, desired, changed_at, previous_synced):
        params = self.params
        if params["state"] == "absent" or not params["wait"] or not desired.get("backupTargetURL"):
            return self.get_target()

        def ready(obj):
            return bt.is_ready(obj, changed_at, previous_synced)

        try:
            found = self.k8s.wait_for("BackupTarget", API_VERSION, [self.name], ready, namespace=self.namespace,
                                      timeout=params["wait_timeout"], sleep=params["wait_sleep"])
        except WaitTimeout as exc:
            last = (exc.details.get("last") or {}).get(self.name)
            reason = bt.unavailable_message(last) or (
                "available=%s, lastSyncedAt=%s" % ((last or {}).get("status", {}).get("available"),
                                                   (last or {}).get("status", {}).get("lastSyncedAt")))
            raise LonghornError("Timed out after %ss waiting for BackupTarget %s to become available and synced: %s"
                                % (params["wait_timeout"], self.name, reason), result=clean(last)) from None
        return found[self.name]


def main():
    module = new_module(argument_spec(), **MODULE_KWARGS)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    manager = None
    try:
        manager = BackupTargetManager(module, K8sAccess(module))
        result = manager.run()
    except LonghornError as exc:
        if manager is not None:
            for warning in manager.warnings:
                module.warn(warning)
        details = dict(exc.details)
        # Whatever was written counts, rolled back or not.
        details["changed"] = bool(manager is not None and manager.wrote)
        module.fail_json(msg=str(exc), **details)
    for warning in manager.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
