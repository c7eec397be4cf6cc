# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Longhorn Settings: the default table and how the emulator reads them.

Defaults are those of longhorn-manager v1.10.2 (``lm@v1.10.2:types/setting.go``),
adjusted for older versions where the lab presents one (ref §1.2).
"""

from __future__ import annotations

import json

from ..context import LONGHORN_NAMESPACE

SETTINGS = ("longhorn.io", "settings")

# ref §1.2: up to v1.7 these Settings were the source of truth for BackupTarget "default";
# from v1.8 they have no definition and the webhook refuses them.
BACKUP_TARGET = "backup-target"
BACKUP_TARGET_CREDENTIAL_SECRET = "backup-target-credential-secret"
BACKUPSTORE_POLL_INTERVAL = "backupstore-poll-interval"
LEGACY_BACKUP_TARGET_SETTINGS = (BACKUP_TARGET, BACKUP_TARGET_CREDENTIAL_SECRET, BACKUPSTORE_POLL_INTERVAL)

CURRENT_LONGHORN_VERSION = "current-longhorn-version"
DEFAULT_ENGINE_IMAGE = "default-engine-image"
DEFAULT_REPLICA_COUNT = "default-replica-count"
BACKUP_COMPRESSION_METHOD = "backup-compression-method"
DEFAULT_BACKUP_BLOCK_SIZE = "default-backup-block-size"
RECURRING_JOB_MAX_RETENTION = "recurring-job-max-retention"
BACKUP_EXECUTION_TIMEOUT = "backup-execution-timeout"
DEFAULT_STATIC_STORAGE_CLASS = "default-longhorn-static-storage-class"
ALLOW_DEGRADED_VOLUME_CREATION = "allow-volume-creation-with-degraded-availability"

# Settings whose v1.10 value is a JSON map per data engine (``DataEngineSpecific`` definitions).
_V1_V2 = '{"v1":"%s","v2":"%s"}'

# name -> default value in v1.10.2. Image settings are filled per version in default_settings().
DEFAULTS_V1_10 = {
    "allow-recurring-job-while-volume-detached": "false",
    "failed-backup-ttl": "1440",
    BACKUP_EXECUTION_TIMEOUT: "1",
    "restore-volume-recurring-jobs": "false",
    "create-default-disk-labeled-nodes": "false",
    "default-data-path": "/var/lib/longhorn/",
    "replica-soft-anti-affinity": "false",
    "freeze-filesystem-for-snapshot": '{"v1":"false"}',
    "replica-auto-balance": "disabled",
    "replica-auto-balance-disk-pressure-percentage": "90",
    "storage-over-provisioning-percentage": "100",
    "storage-minimal-available-percentage": "25",
    "storage-reserved-percentage-for-default-disk": "30",
    "upgrade-checker": "true",
    "upgrade-responder-url": "https://longhorn-upgrade-responder.rancher.io/v1/checkupgrade",
    "allow-collecting-longhorn-usage-metrics": "true",
    DEFAULT_REPLICA_COUNT: _V1_V2 % ("3", "3"),
    "default-data-locality": "disabled",
    DEFAULT_STATIC_STORAGE_CLASS: "longhorn-static",
    "taint-toleration": "",
    "system-managed-components-node-selector": "",
    "crd-api-version": "longhorn.io/v1beta2",
    "auto-salvage": "true",
    "auto-delete-pod-when-volume-detached-unexpectedly": "true",
    "blacklist-for-auto-delete-pod-when-volume-detached-unexpectedly": "",
    "registry-secret": "",
    "disable-scheduling-on-cordoned-node": "true",
    "replica-zone-soft-anti-affinity": "true",
    "node-down-pod-deletion-policy": "do-nothing",
    "node-drain-policy": "block-if-contains-last-replica",
    "detach-manually-attached-volumes-when-cordoned": "false",
    "priority-class": "longhorn-critical",
    "disable-revision-counter": '{"v1":"true"}',
    "replica-replenishment-wait-interval": "600",
    "concurrent-replica-rebuild-per-node-limit": "5",
    "concurrent-backing-image-replenish-per-node-limit": "5",
    "concurrent-volume-backup-restore-per-node-limit": "5",
    "system-managed-pods-image-pull-policy": "if-not-present",
    ALLOW_DEGRADED_VOLUME_CREATION: "true",
    "auto-cleanup-system-generated-snapshot": "true",
    "auto-cleanup-recurring-job-backup-snapshot": "true",
    "concurrent-automatic-engine-upgrade-per-node-limit": "0",
    "backing-image-cleanup-wait-interval": "60",
    "backing-image-recovery-wait-interval": "300",
    "guaranteed-instance-manager-cpu": _V1_V2 % ("12", "12"),
    "kubernetes-cluster-autoscaler-enabled": "false",
    "orphan-resource-auto-deletion": "",
    "orphan-resource-auto-deletion-grace-period": "300",
    "storage-network": "",
    "storage-network-for-rwx-volume-enabled": "false",
    "recurring-successful-jobs-history-limit": "1",
    "recurring-failed-jobs-history-limit": "1",
    RECURRING_JOB_MAX_RETENTION: "100",
    "support-bundle-failed-history-limit": "1",
    "support-bundle-node-collection-timeout": "30",
    "deleting-confirmation-flag": "false",
    "engine-replica-timeout": _V1_V2 % ("8", "8"),
    "snapshot-data-integrity": _V1_V2 % ("fast-check", "fast-check"),
    "snapshot-data-integrity-immediate-check-after-snapshot-creation": _V1_V2 % ("false", "false"),
    "snapshot-data-integrity-cronjob": _V1_V2 % ("0 0 */7 * *", "0 0 */7 * *"),
    "snapshot-max-count": "250",
    "remove-snapshots-during-filesystem-trim": "false",
    "fast-replica-rebuild-enabled": _V1_V2 % ("true", "true"),
    "replica-file-sync-http-client-timeout": "30",
    "long-grpc-timeout": "86400",
    BACKUP_COMPRESSION_METHOD: "lz4",
    "backup-concurrent-limit": "2",
    "restore-concurrent-limit": "2",
    DEFAULT_BACKUP_BLOCK_SIZE: "2",
    "instance-manager-pod-liveness-probe-timeout": "10",
    "log-level": "Info",
    "v1-data-engine": "true",
    "v2-data-engine": "false",
    "data-engine-hugepage-enabled": '{"v2":"true"}',
    "data-engine-memory-size": '{"v2":"2048"}',
    "data-engine-cpu-mask": '{"v2":"0x1"}',
    "data-engine-interrupt-mode-enabled": '{"v2":"false"}',
    "replica-disk-soft-anti-affinity": "true",
    "allow-empty-node-selector-volume": "true",
    "allow-empty-disk-selector-volume": "true",
    "disable-snapshot-purge": "false",
    "data-engine-log-level": '{"v2":"Notice"}',
    "data-engine-log-flags": '{"v2":""}',
    "replica-rebuilding-bandwidth-limit": '{"v2":"0"}',
    "auto-cleanup-when-delete-backup": "false",
    "auto-cleanup-snapshot-after-on-demand-backup-completed": "false",
    "default-min-number-of-backing-image-copies": "3",
    "rwx-volume-fast-failover": "false",
    "offline-replica-rebuilding": _V1_V2 % ("false", "false"),
    "log-path": "/var/lib/longhorn/logs/",
}

# Settings that appeared in v1.10 (not offered when the lab presents an older version).
_NEW_IN_V1_10 = (DEFAULT_BACKUP_BLOCK_SIZE, "log-path", "data-engine-interrupt-mode-enabled", "instance-manager-pod-liveness-probe-timeout")


def _version_tuple(version):
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def engine_image(version):
    return "longhornio/longhorn-engine:%s" % version


def manager_image(version):
    return "longhornio/longhorn-manager:%s" % version


def instance_manager_image(version):
    return "longhornio/longhorn-instance-manager:%s" % version


def default_settings(version):
    """Settings a fresh Longhorn of ``version`` creates, as ``{name: value}`` (ref §1.2)."""
    settings = dict(DEFAULTS_V1_10)
    settings[CURRENT_LONGHORN_VERSION] = version
    settings[DEFAULT_ENGINE_IMAGE] = engine_image(version)
    settings["default-instance-manager-image"] = instance_manager_image(version)
    settings["default-backing-image-manager-image"] = "longhornio/backing-image-manager:%s" % version
    settings["support-bundle-manager-image"] = "longhornio/support-bundle-kit:v0.0.71"
    settings["latest-longhorn-version"] = ""
    settings["stable-longhorn-versions"] = ""
    if _version_tuple(version) < (1, 10):
        # Per-data-engine JSON values arrived in v1.10; older releases store one value.
        for name in _NEW_IN_V1_10:
            settings.pop(name, None)
        for name, value in list(settings.items()):
            if value.startswith("{"):
                per_engine = json.loads(value)
                if "v1" in per_engine:
                    settings[name] = per_engine["v1"]
                else:
                    settings.pop(name)
    if _version_tuple(version) <= (1, 7):
        # ref §1.2: the three backup-target Settings exist only up to v1.7.
        settings[BACKUP_TARGET] = ""
        settings[BACKUP_TARGET_CREDENTIAL_SECRET] = ""
        settings[BACKUPSTORE_POLL_INTERVAL] = "300"
    return settings


def setting_object(name, value):
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Setting",
        "metadata": {"name": name, "namespace": LONGHORN_NAMESPACE},
        "value": value,
    }


def get_setting(store, name, default=None):
    """The Setting CR's value; the v1.10 default when the CR is missing; else ``default``."""
    rtype = store.registry.by_plural(SETTINGS[1], SETTINGS[0])
    obj = store.try_get(rtype, LONGHORN_NAMESPACE, name) if rtype is not None else None
    if obj is not None:
        return obj.get("value", "")
    if default is not None:
        return default
    return DEFAULTS_V1_10.get(name)


def get_setting_for_engine(store, name, data_engine="v1", default=None):
    """A data-engine-specific setting: a JSON map in v1.10, a single value before (ref §1.2)."""
    value = get_setting(store, name, default)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value).get(data_engine, default)
        except ValueError:
            return default
    return value


def get_int(store, name, default=0, data_engine="v1"):
    value = get_setting_for_engine(store, name, data_engine)
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def get_bool(store, name, default=False, data_engine="v1"):
    value = get_setting_for_engine(store, name, data_engine)
    if value is None:
        return default
    return str(value).strip().lower() == "true"
