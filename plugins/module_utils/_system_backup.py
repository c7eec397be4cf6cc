# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Longhorn SystemBackup CRs: bodies, predicates and error texts (ref §1.7)."""

from __future__ import annotations

import datetime

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_BACKUP_TARGET,
    DELETE_CR_ONLY_LABEL,
)

KIND = "SystemBackup"
STATE_READY = "Ready"
STATE_ERROR = "Error"
VOLUME_BACKUP_POLICIES = ("if-not-present", "always", "disabled")


def generated_name(now=None):
    """``system-backup-<UTC time>``: sortable and valid per the manager's name regex (ref §1)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "system-backup-%s" % now.strftime("%Y%m%d-%H%M%S")


def system_backup_body(name, namespace, volume_backup_policy):
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"volumeBackupPolicy": volume_backup_policy},
    }


def error_messages(system_backup):
    """Messages of the Error conditions (ref §1.7: type Error, reasons Generate/Upload/Sync/Delete)."""
    conditions = ((system_backup or {}).get("status") or {}).get("conditions") or []
    return ["%s: %s" % (c.get("reason") or "Error", c.get("message") or "") for c in conditions
            if c.get("type") == STATE_ERROR and c.get("status", "True") == "True"]


def settled(system_backup):
    """wait_for predicate: Ready, or Error raised as LonghornError with the condition messages."""
    state = (system_backup.get("status") or {}).get("state")
    if state == STATE_ERROR:
        name = system_backup["metadata"]["name"]
        messages = error_messages(system_backup) or ["no Error condition recorded"]
        raise LonghornError("SystemBackup %s failed: %s" % (name, "; ".join(messages)), result=system_backup)
    return state == STATE_READY


def default_target_problem(target):
    """Why Longhorn refuses a SystemBackup now (ref §1.7 validator), or None."""
    if target is None:
        return "BackupTarget %s does not exist" % DEFAULT_BACKUP_TARGET
    status = target.get("status") or {}
    if status.get("available"):
        return None
    messages = [c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Unavailable" and c.get("message")]
    return "BackupTarget %s is not available%s" % (DEFAULT_BACKUP_TARGET, (": " + "; ".join(messages)) if messages else "")


def keeps_remote(system_backup):
    return DELETE_CR_ONLY_LABEL in ((system_backup or {}).get("metadata", {}).get("labels") or {})


def managed_fields(system_backup):
    """The fields the diff shows."""
    if system_backup is None:
        return {}
    return {
        "name": system_backup["metadata"]["name"],
        "volume_backup_policy": (system_backup.get("spec") or {}).get("volumeBackupPolicy") or "",
        "keep_remote": keeps_remote(system_backup),
    }
