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
notes:
  - A BackupTarget with the same URL as another one is refused by Longhorn.
  - The wait compares C(status.lastSyncedAt), which has whole seconds, with the local clock; keep the controller's clock in sync with the cluster.
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

import datetime
import time
import traceback

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backup_target as bt
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    WaitTimeout,
    auth_argument_spec,
    new_module,
)
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

    def __init__(self, module, access, clock=time.time):
        self.module = module
        self.k8s = access
        self.params = module.params
        self.namespace = self.params["namespace"]
        self.name = self.params["name"]
        self.clock = clock
        self.warnings = []
        self.version = ""
        self.legacy = False

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

    def ensure_secret(self, secret_name, wanted):
        """Create or patch the Secret; returns ``(changed_keys, keys_before, existed)``. Values never leave this method."""
        secret = self.k8s.get("Secret", "v1", secret_name, namespace=self.namespace)
        current = bt.decode_secret_data(secret)
        changed_keys = bt.changed_secret_keys(current, wanted)
        if secret is None:
            body = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": secret_name, "namespace": self.namespace},
                "data": bt.encode_secret_data(wanted),
            }
            self.k8s.create("Secret", "v1", body, namespace=self.namespace)
        elif changed_keys:
            patch = {"data": bt.encode_secret_data({key: wanted[key] for key in changed_keys})}
            self.k8s.merge_patch("Secret", "v1", secret_name, patch, namespace=self.namespace)
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
                raise LonghornError(str(exc)) from None
            self.warnings.extend(url_warnings)
        try:
            return bt.normalize_poll_interval(params["poll_interval"])
        except InvalidValue as exc:
            raise LonghornError(str(exc)) from None

    def desired(self, current, exists, poll):
        params = self.params
        if params["state"] == "absent":
            return bt.desired_view(current, url="", credential_secret="")
        if poll is None and not exists:
            poll = DEFAULT_POLL_SECONDS  # ref §1.1: a CR created by hand has no webhook default, 0 would mean never poll
        return bt.desired_view(current, url=params["url"], credential_secret=params["credential_secret"], poll_seconds=poll)

    def run(self):
        started = time.monotonic()
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
            current = bt.legacy_view(self.read_settings())
            exists = True
        else:
            exists = target is not None
            current = bt.target_view((target or {}).get("spec"))
        previous_synced = ((target or {}).get("status") or {}).get("lastSyncedAt")

        absent = params["state"] == "absent"
        delete_named = absent and not self.legacy and self.name != DEFAULT_BACKUP_TARGET
        desired = self.desired(current, exists, poll)

        changed_at = None
        changed = False
        secret_changed_keys = []
        secret_before = secret_after = None
        wanted_secret = bt.secret_values(params) if not absent else {}
        if wanted_secret:
            changed_at = changed_at or self.now()
            secret_changed_keys, keys_before, existed = self.ensure_secret(params["credential_secret"], wanted_secret)
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
                self.k8s.delete("BackupTarget", API_VERSION, self.name, namespace=self.namespace)
            after_view = None
        else:
            after_view = desired
            if self.legacy:
                changes = bt.settings_patch(current, desired)
                for setting_name, value in sorted(changes.items()):
                    changed_at = changed_at or self.now()
                    self.k8s.merge_patch("Setting", API_VERSION, setting_name, {"value": value}, namespace=self.namespace)
                target_changed = bool(changes)
            elif not exists:
                changed_at = self.now()
                body = {
                    "apiVersion": API_VERSION, "kind": "BackupTarget",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": bt.spec_patch({}, desired),
                }
                body["spec"].setdefault("backupTargetURL", "")
                result_obj = self.k8s.create("BackupTarget", API_VERSION, body, namespace=self.namespace)
                target_changed = True
            else:
                patch = bt.spec_patch(current, desired)
                if patch:
                    changed_at = changed_at or self.now()
                    result_obj = self.k8s.merge_patch("BackupTarget", API_VERSION, self.name, {"spec": patch}, namespace=self.namespace)
                    target_changed = True
            changed = changed or target_changed
            # Longhorn syncs an already-synced target again only when syncRequestedAt is newer than lastSyncedAt
            # (ref §1.1), so a changed target or a new Secret value would wait for the poll timer: ask now.
            if (params["sync"] or (secret_changed_keys and not target_changed) or (target_changed and not self.legacy)) and not absent and exists:
                moment = self.now()
                changed_at = changed_at or moment
                result_obj = self.k8s.merge_patch("BackupTarget", API_VERSION, self.name,
                                                  {"spec": {"syncRequestedAt": bt.rfc3339(moment)}}, namespace=self.namespace)
                sync_requested = changed = True

        if self.module.check_mode:
            if result_obj is None and not delete_named:
                result_obj = self.get_target()
        elif not delete_named:
            result_obj = self.maybe_wait(desired, changed_at if changed else None, previous_synced)

        result = dict(
            changed=changed,
            result=clean(result_obj) if not delete_named else {},
            legacy_settings=self.legacy,
            longhorn_version=self.version,
            secret_changed_keys=secret_changed_keys,
            sync_requested=sync_requested,
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
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    manager = None
    try:
        manager = BackupTargetManager(module, K8sAccess(module))
        result = manager.run()
    except LonghornError as exc:
        if manager is not None:
            for warning in manager.warnings:
                module.warn(warning)
        module.fail_json(msg=str(exc), **exc.details)
    for warning in manager.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
