# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Setting controller, up to v1.7 (ref §1.2): the backup-target Settings drive BackupTarget ``default``.

Modelled on ``lm@v1.7.2:controller/setting_controller.go`` ``syncBackupTarget``: the three
Settings are copied into the CR, overwriting it, and a changed spec requests a sync. From v1.8
on the Settings do not exist and this controller does nothing.
"""

from __future__ import annotations

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from ..kube import errors
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


CONTROLLERS = [SettingsController]
