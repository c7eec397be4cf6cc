# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who writes BackupTarget ``default`` besides users (ref §1.2).

Up to v1.7 the setting controller copies the three backup-target Settings into the CR,
overwriting it (``lm@v1.7.2:controller/setting_controller.go`` ``syncBackupTarget``).
From v1.8 the ConfigMap ``longhorn-default-resource`` does it, at manager start and on every
change of the ConfigMap: keys present overwrite the CR, absent keys keep its values
(``lm@v1.10.2:datastore/longhorn.go`` ``syncDefaultBackupTargetResourceWithCustomizedParameters``).
"""

from __future__ import annotations

import yaml

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import common
from . import settings as lh_settings
from .targets import DEFAULT_BACKUP_TARGET

DEFAULT_TARGET_KEY = ("longhorn.io", "backuptargets", LONGHORN_NAMESPACE, DEFAULT_BACKUP_TARGET)


class SettingsController(Controller):
    name = "longhorn-setting"
    watches = (("longhorn.io", "settings"), ("longhorn.io", "backuptargets"))

    @property
    def active(self):
        return self.ctx.config.uses_backup_target_settings

    def keys_for(self, event):
        if not self.active:
            return []
        name = event.obj.get("metadata", {}).get("name")
        if event.rtype_key == ("longhorn.io", "settings") and name not in lh_settings.LEGACY_BACKUP_TARGET_SETTINGS:
            return []
        if event.rtype_key == ("longhorn.io", "backuptargets") and name != DEFAULT_BACKUP_TARGET:
            return []
        return [DEFAULT_TARGET_KEY]

    def initial_keys(self):
        return [DEFAULT_TARGET_KEY] if self.active else []

    def reconcile(self, key):
        if not self.active:
            return None
        store = self.store
        url = lh_settings.get_setting(store, lh_settings.BACKUP_TARGET, "") or ""
        secret = lh_settings.get_setting(store, lh_settings.BACKUP_TARGET_CREDENTIAL_SECRET, "") or ""
        try:
            interval = int(str(lh_settings.get_setting(store, lh_settings.BACKUPSTORE_POLL_INTERVAL, "300") or "300").strip())
        except ValueError:
            interval = 300
        wanted = {"backupTargetURL": url, "credentialSecret": secret, "pollInterval": common.format_duration(interval)}
        target = common.get(store, "backuptargets", DEFAULT_BACKUP_TARGET)
        if target is None:
            try:
                store.create(common.rtype(store, "backuptargets"), {
                    "metadata": {"name": DEFAULT_BACKUP_TARGET, "namespace": LONGHORN_NAMESPACE}, "spec": wanted,
                }, user=common.MANAGER)
            except errors.AlreadyExists:
                return 0.1
            except errors.ApiError as exc:
                common.LOG.warning("cannot create the default backup target: %s", exc.message)
                return 5.0
            return None
        if target["metadata"].get("deletionTimestamp"):
            return None
        spec = target.get("spec") or {}
        current = {"backupTargetURL": spec.get("backupTargetURL") or "", "credentialSecret": spec.get("credentialSecret") or "",
                   "pollInterval": self._normalized_interval(spec.get("pollInterval"))}
        if current == wanted:
            return None

        def _overwrite(obj):
            obj_spec = obj.setdefault("spec", {})
            obj_spec.update(wanted)
        try:
            common.update_object(store, "backuptargets", DEFAULT_BACKUP_TARGET, _overwrite)
            # A changed spec forces a sync of the target.
            common.request_sync(store, "backuptargets", DEFAULT_BACKUP_TARGET)
        except errors.ApiError as exc:
            common.LOG.warning("cannot update the default backup target from the settings: %s", exc.message)
            return 5.0
        return None

    @staticmethod
    def _normalized_interval(value):
        try:
            return common.format_duration(common.parse_duration(value))
        except ValueError:
            return value


DEFAULT_RESOURCE_CONFIGMAP = "longhorn-default-resource"
DEFAULT_RESOURCE_KEY = "default-resource.yaml"
CONFIGMAP_KEY = ("", "configmaps", LONGHORN_NAMESPACE, DEFAULT_RESOURCE_CONFIGMAP)


class DefaultResourceController(Controller):
    """v1.8+: apply ``longhorn-default-resource`` to BackupTarget default (kubernetes_configmap_controller)."""

    name = "longhorn-default-resource"
    watches = (("", "configmaps"),)

    @property
    def active(self):
        return not self.ctx.config.uses_backup_target_settings

    def keys_for(self, event):
        meta = event.obj.get("metadata", {})
        if not self.active or meta.get("namespace") != LONGHORN_NAMESPACE or meta.get("name") != DEFAULT_RESOURCE_CONFIGMAP:
            return []
        return [CONFIGMAP_KEY]

    def initial_keys(self):
        # The manager applies the ConfigMap when it starts (app/daemon.go).
        return [CONFIGMAP_KEY] if self.active else []

    def reconcile(self, key):
        if not self.active:
            return None
        store = self.store
        configmap = store.try_get("configmaps", LONGHORN_NAMESPACE, DEFAULT_RESOURCE_CONFIGMAP)
        if configmap is None or common.store_missing(store, "backuptargets"):
            return None
        try:
            parsed = yaml.safe_load((configmap.get("data") or {}).get(DEFAULT_RESOURCE_KEY) or "") or {}
        except yaml.YAMLError as exc:
            common.LOG.warning("cannot parse %s: %s", DEFAULT_RESOURCE_CONFIGMAP, exc)
            return None
        if not isinstance(parsed, dict):
            return None
        values = {str(k): "" if v is None else str(v) for k, v in parsed.items()}
        wanted = {}
        if lh_settings.BACKUP_TARGET in values:
            wanted["backupTargetURL"] = values[lh_settings.BACKUP_TARGET]
        if lh_settings.BACKUP_TARGET_CREDENTIAL_SECRET in values:
            wanted["credentialSecret"] = values[lh_settings.BACKUP_TARGET_CREDENTIAL_SECRET]
        poll = values.get(lh_settings.BACKUPSTORE_POLL_INTERVAL, "")
        if lh_settings.BACKUPSTORE_POLL_INTERVAL in values and not poll:
            wanted["pollInterval"] = "5m0s"     # a present but empty key means the 300 s default
        elif poll:
            try:
                wanted["pollInterval"] = common.format_duration(int(poll))
            except ValueError:
                common.LOG.warning("invalid %s in %s: %s", lh_settings.BACKUPSTORE_POLL_INTERVAL, DEFAULT_RESOURCE_CONFIGMAP, poll)
                return None
        target = common.get(store, "backuptargets", DEFAULT_BACKUP_TARGET)
        if target is None:
            spec = {"backupTargetURL": wanted.get("backupTargetURL", ""), "credentialSecret": wanted.get("credentialSecret", ""),
                    "pollInterval": wanted.get("pollInterval", "5m0s")}
            try:
                store.create(common.rtype(store, "backuptargets"), {
                    "metadata": {"name": DEFAULT_BACKUP_TARGET, "namespace": LONGHORN_NAMESPACE}, "spec": spec}, user=common.MANAGER)
            except errors.ApiError as exc:
                common.LOG.warning("cannot create the default backup target: %s", exc.message)
            return None
        spec = target.get("spec") or {}
        current = {"backupTargetURL": spec.get("backupTargetURL") or "", "credentialSecret": spec.get("credentialSecret") or "",
                   "pollInterval": SettingsController._normalized_interval(spec.get("pollInterval"))}
        if all(current[field] == value for field, value in wanted.items()):
            return None

        def _apply(obj):
            obj.setdefault("spec", {}).update(wanted)
        try:
            common.update_object(store, "backuptargets", DEFAULT_BACKUP_TARGET, _apply)
            common.request_sync(store, "backuptargets", DEFAULT_BACKUP_TARGET)
        except errors.ApiError as exc:
            common.LOG.warning("cannot apply %s to the default backup target: %s", DEFAULT_RESOURCE_CONFIGMAP, exc.message)
        return None


CONTROLLERS = [SettingsController, DefaultResourceController]
