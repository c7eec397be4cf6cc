# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission rules of Longhorn Volumes: the volume mutator and validator.

Modelled on ``lm@v1.10.2:webhook/resources/volume/{mutator,validator}.go`` (ref §1, §1.5).
Status writes do not pass through Longhorn's webhooks (the webhook rules name the
resource, not its ``/status`` subresource), so only spec/metadata writes are checked.
"""

from __future__ import annotations

import re

from ..context import LONGHORN_NAMESPACE
from .. import api_errors as errors
from . import settings as lh_settings

VOLUMES = ("longhorn.io", "volumes")
BACKUPS = ("longhorn.io", "backups")
BACKUP_VOLUMES = ("longhorn.io", "backupvolumes")
BACKUP_TARGETS = ("longhorn.io", "backuptargets")

MUTATOR = "mutator.longhorn.io"
VALIDATOR = "validator.longhorn.io"

LONGHORN_FINALIZER = "longhorn.io"
DEFAULT_BACKUP_TARGET = "default"
# ref §1: datastore.NameMaximumLength.
NAME_MAXIMUM_LENGTH = 40
MIB = 1024 * 1024
# lm@v1.10.2:util/util.go SizeAlignment: sizes are rounded up to 2 MiB.
SIZE_ALIGNMENT = 2 * MIB
BACKUP_BLOCK_SIZES = (2 * MIB, 16 * MIB)
# ref §1: util.ValidateName.
_VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
LABEL_VOLUME_ACCESS_MODE = "longhorn.io/volume-access-mode"

# Fields the common mutate() fills when empty (lm@v1.10.2 volume mutator).
_COMMON_DEFAULTS = (
    ("replicaAutoBalance", "ignored"),
    ("snapshotDataIntegrity", "ignored"),
    ("restoreVolumeRecurringJob", "ignored"),
    ("replicaSoftAntiAffinity", "ignored"),
    ("replicaZoneSoftAntiAffinity", "ignored"),
    ("replicaDiskSoftAntiAffinity", "ignored"),
    ("dataEngine", "v1"),
    ("freezeFilesystemForSnapshot", "ignored"),
    ("offlineRebuilding", "ignored"),
)
_FRONTENDS = {"v1": ("blockdev", "iscsi"), "v2": ("blockdev", "nvmf", "ublk")}


def deny(webhook, message, code=422, field=""):
    """A webhook refusal as the API server relays it: werror.NewInvalidError is 422/Invalid."""
    error = errors.AdmissionDenied(webhook, message, code=code)
    error.reason = {400: "BadRequest", 403: "Forbidden", 409: "Conflict", 422: "Invalid", 500: "InternalError"}.get(code, error.reason)
    if code == 422:
        error.details = {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]}
    return error


def parse_size(value):
    """int64 bytes from an int or a decimal string (lm util.ConvertSize for the forms the lab meets)."""
    if value in (None, ""):
        return 0
    if isinstance(value, bool):
        raise ValueError("could not parse size '%s'" % value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    suffixes = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "Ti": 1024 * 1024 * MIB}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix) and text[:-len(suffix)].isdigit():
            return int(text[:-len(suffix)]) * factor
    if not text.isdigit():
        raise ValueError("error parsing size '%s': quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" % text)
    return int(text)


def round_up_size(size):
    """lm@v1.10.2:util/util.go RoundUpSize."""
    if size <= 0:
        return SIZE_ALIGNMENT
    remainder = size % SIZE_ALIGNMENT
    return size if remainder == 0 else size - remainder + SIZE_ALIGNMENT


def _rtype(store, key):
    return store.registry.by_plural(key[1], key[0])


def _get(store, key, name):
    rtype = _rtype(store, key)
    if rtype is None:
        return None
    return store.try_get(rtype, LONGHORN_NAMESPACE, name)


def not_found_text(singular, name):
    """The lister's NotFound text in Longhorn's messages: ``backup.longhorn.io "x" not found``."""
    return '%s.longhorn.io "%s" not found' % (singular, name)


def decode_from_backup(url):
    """``(backup, volume)`` of a fromBackup URL; only these query parameters matter (ref §1.5 step 4, §4)."""
    from .backupstore import BackupStoreError, decode_backup_url  # pylint: disable=import-outside-toplevel
    try:
        backup_name, volume_name = decode_backup_url(url)
    except BackupStoreError as exc:
        raise ValueError(str(exc)) from None
    return backup_name, volume_name


def find_backup_volume(store, target_name, volume_name):
    """ref §1.4: BackupVolumes are looked up by labels, not by name."""
    rtype = _rtype(store, BACKUP_VOLUMES)
    if rtype is None:
        return None
    items, _rv = store.list(rtype, LONGHORN_NAMESPACE,
                            label_selector="%s=%s,%s=%s" % (LABEL_BACKUP_VOLUME, volume_name, LABEL_BACKUP_TARGET, target_name))
    return items[0] if items else None


def _ensure_finalizer(obj):
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers") or []
    if LONGHORN_FINALIZER not in finalizers and not meta.get("deletionTimestamp"):
        meta["finalizers"] = finalizers + [LONGHORN_FINALIZER]


def _backup_block_size_default(store):
    size_mib = lh_settings.get_int(store, lh_settings.DEFAULT_BACKUP_BLOCK_SIZE, default=2)
    return (size_mib or 2) * MIB


def _common_mutate(store, obj, more_labels):
    """mutate() shared by create and update (lm@v1.10.2 volume mutator)."""
    spec = obj.setdefault("spec", {})
    _ensure_finalizer(obj)
    for field, default in _COMMON_DEFAULTS:
        if not spec.get(field):
            spec[field] = default
    if spec.get("diskSelector") is None:
        spec["diskSelector"] = []
    if spec.get("nodeSelector") is None:
        spec["nodeSelector"] = []
    if spec["dataEngine"] == "v2":
        spec["unmapMarkSnapChainRemoved"] = "disabled"
    elif not spec.get("unmapMarkSnapChainRemoved"):
        spec["unmapMarkSnapChainRemoved"] = "ignored"
    block_size = int(spec.get("backupBlockSize") or 0)
    if spec.get("Standby"):
        # A DR volume always takes the block size of its backup.
        backup = _get(store, BACKUPS, _safe_backup_name(spec.get("fromBackup")))
        block_size = int(((backup or {}).get("spec") or {}).get("backupBlockSize") or 0) or 2 * MIB
    elif block_size == 0:
        block_size = _backup_block_size_default(store)
    spec["backupBlockSize"] = str(block_size)
    if more_labels:
        labels = obj["metadata"].setdefault("labels", {}) or {}
        labels.update(more_labels)
        obj["metadata"]["labels"] = labels


def _safe_backup_name(url):
    try:
        return decode_from_backup(url or "")[0]
    except ValueError:
        return ""


def _mutate_create(store, obj):
    spec = obj.setdefault("spec", {})
    data_engine = spec.get("dataEngine") or "v1"
    if not spec.get("numberOfReplicas"):
        spec["numberOfReplicas"] = lh_settings.get_int(store, lh_settings.DEFAULT_REPLICA_COUNT, default=3, data_engine=data_engine)
    if not spec.get("dataLocality"):
        spec["dataLocality"] = lh_settings.get_setting(store, "default-data-locality") or "disabled"
    from_backup = spec.get("fromBackup") or ""
    if not spec.get("accessMode"):
        access_mode = "rwo"
        if from_backup:
            # ref §1.5: the access mode comes from the backup's label when it is not given.
            try:
                backup_name = decode_from_backup(from_backup)[0]
            except ValueError as exc:
                raise deny(MUTATOR, "failed to decode backup url %s: %s" % (from_backup, exc)) from None
            backup = _get(store, BACKUPS, backup_name)
            if backup is None:
                raise deny(MUTATOR, "failed to get backup %s: %s" % (backup_name, not_found_text("backup", backup_name)))
            access_mode = ((backup.get("status") or {}).get("labels") or {}).get(LABEL_VOLUME_ACCESS_MODE) or access_mode
        spec["accessMode"] = access_mode

    more_labels = {}
    try:
        size = parse_size(spec.get("size"))
    except ValueError as exc:
        raise deny(MUTATOR, str(exc)) from None
    target_name = spec.get("backupTargetName") or ""
    if from_backup:
        try:
            backup_name, source_volume = decode_from_backup(from_backup)
        except ValueError as exc:
            raise deny(MUTATOR, "cannot get backup and volume name from backup URL %s: %s" % (from_backup, exc)) from None
        # ref §1.5 step 1: the Backup CR must exist in the cluster.
        backup = _get(store, BACKUPS, backup_name)
        if backup is None:
            raise deny(MUTATOR, "cannot get backup %s: %s" % (backup_name, not_found_text("backup", backup_name)))
        backup_status = backup.get("status") or {}
        # ref §1.5: backupTargetName is forced to the backup's target.
        target_name = backup_status.get("backupTargetName") or ""
        if not target_name or find_backup_volume(store, target_name, source_volume) is None:
            if not target_name:
                detail = "backup target name and volume name cannot be empty"
            else:
                detail = 'backupVolumes "" not found'
            raise deny(MUTATOR, "cannot get backup volume for backup target %s and volume %s: %s" % (target_name, source_volume, detail))
        # ref §1.5: the size is replaced by Backup.status.volumeSize.
        try:
            size = parse_size(backup_status.get("volumeSize"))
        except ValueError as exc:
            raise deny(MUTATOR, "get invalid size for volume %s: %s" % (backup_status.get("volumeSize"), exc)) from None
        more_labels[LABEL_BACKUP_VOLUME] = source_volume
    target_name = target_name or DEFAULT_BACKUP_TARGET
    more_labels[LABEL_BACKUP_TARGET] = target_name
    spec["backupTargetName"] = target_name
    spec["size"] = str(round_up_size(size))

    image_setting = "default-instance-manager-image" if data_engine == "v2" else lh_settings.DEFAULT_ENGINE_IMAGE
    image = lh_settings.get_setting(store, image_setting) or ""
    if not image:
        raise deny(MUTATOR, "invalid empty setting %s" % image_setting)
    spec["image"] = image
    if not spec.get("backupCompressionMethod"):
        method = lh_settings.get_setting(store, lh_settings.BACKUP_COMPRESSION_METHOD) or ""
        if not method:
            raise deny(MUTATOR, "BUG: Invalid empty Setting.BackupCompressionMethod")
        spec["backupCompressionMethod"] = method
    if not spec.get("snapshotMaxCount"):
        spec["snapshotMaxCount"] = lh_settings.get_int(store, "snapshot-max-count", default=250)
    if spec.get("dataLocality") == "strict-local":
        spec["revisionCounterDisabled"] = True
    if spec.get("dataSource") and not spec.get("cloneMode"):
        spec["cloneMode"] = "full-copy"
    # ref §1.5: frontend is NOT defaulted on the CR path (only the REST API defaults it to blockdev).
    _common_mutate(store, obj, more_labels)


def _mutate_update(store, obj, old):
    spec = obj.setdefault("spec", {})
    old_spec = old.get("spec") or {}
    if not spec.get("accessMode"):
        spec["accessMode"] = "rwo"
    try:
        size = parse_size(spec.get("size"))
    except ValueError as exc:
        raise deny(MUTATOR, str(exc)) from None
    rounded = round_up_size(size)
    if str(rounded) != str(spec.get("size")):
        spec["size"] = str(rounded)
    if not spec.get("backupCompressionMethod"):
        # Upstream quirk: the update mutator fills gzip, not the setting.
        spec["backupCompressionMethod"] = "gzip"
    if not spec.get("snapshotMaxCount"):
        spec["snapshotMaxCount"] = lh_settings.get_int(store, "snapshot-max-count", default=250)
    max_size = parse_size(spec.get("snapshotMaxSize") or 0)
    if parse_size(old_spec.get("size")) != rounded and max_size and max_size < rounded * 2:
        spec["snapshotMaxSize"] = str(rounded * 2)
    more_labels = {}
    if old_spec.get("backupTargetName") != spec.get("backupTargetName"):
        more_labels[LABEL_BACKUP_TARGET] = spec.get("backupTargetName") or ""
    _common_mutate(store, obj, more_labels)


def _validate_name(name):
    if not _VALID_NAME.match(name or ""):
        raise deny(VALIDATOR, "invalid name %s" % name)


def _check_volume(obj):
    """datastore.CheckVolume."""
    spec = obj.get("spec") or {}
    name = obj["metadata"].get("name", "")
    if parse_size(spec.get("size")) == 0 or not spec.get("numberOfReplicas"):
        raise deny(VALIDATOR, "BUG: missing required field %s" % name)
    if not _DNS_LABEL.match(name) or len(name) > 63:
        raise deny(VALIDATOR, "invalid volume name: [a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                              "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                              "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')]")
    # ref §1: names are capped at 40 characters; the lab refuses instead of renaming (ref §9 UNCONFIRMED rename).
    if len(name) > NAME_MAXIMUM_LENGTH:
        raise deny(VALIDATOR, "volume name is too long %s, must be less than %d characters" % (name, NAME_MAXIMUM_LENGTH))


def _validate_block_size(spec):
    size = parse_size(spec.get("size"))
    block_size = int(spec.get("backupBlockSize") or 0)
    if block_size not in BACKUP_BLOCK_SIZES:
        raise deny(VALIDATOR, "unsupported BackupBlockSize: %d" % block_size, field="spec.backupBlockSize")
    if size >= 0 and size % block_size:
        raise deny(VALIDATOR, "volume size %d must be an integer multiple of the backup block size %d" % (size, block_size),
                   field="spec.backupBlockSize")


def _validate_replica_count(spec):
    count = int(spec.get("numberOfReplicas") or 0)
    if count < 1 or count > 20:
        raise deny(VALIDATOR, "replica count value %d must between 1 to 20" % count)
    if spec.get("dataLocality") == "strict-local" and count != 1:
        raise deny(VALIDATOR, "number of replica count should be 1 when data locality is strict-local")


def _validate_snapshot_limits(spec):
    count = int(spec.get("snapshotMaxCount") or 0)
    if count < 2 or count > 250:
        raise deny(VALIDATOR, "snapshot max count should be between 2 to 250", field="spec.snapshotMaxCount")
    max_size = parse_size(spec.get("snapshotMaxSize") or 0)
    if max_size and max_size < parse_size(spec.get("size")) * 2:
        raise deny(VALIDATOR, "snapshot max size can not be 0 and at least twice of volume size", field="spec.snapshotMaxSize")


def _validate_backup_target(store, old_name, new_name):
    if not new_name:
        raise deny(VALIDATOR, "backup target name cannot be empty when creating a volume or updating from an existing backup target",
                   field="spec.backupTargetName")
    if old_name == new_name:
        return
    if _get(store, BACKUP_TARGETS, new_name) is None:
        raise deny(VALIDATOR, "failed to get backup target %s: %s" % (new_name, not_found_text("backuptarget", new_name)),
                   field="spec.backupTargetName")


def _validate_create(store, obj):
    spec = obj.get("spec") or {}
    name = obj["metadata"].get("name", "")
    _validate_name(name)
    if spec.get("dataLocality") not in ("disabled", "best-effort", "strict-local"):
        raise deny(VALIDATOR, "invalid data locality mode: %s" % spec.get("dataLocality"), field="spec.dataLocality")
    if spec.get("accessMode") not in ("rwo", "rwx"):
        raise deny(VALIDATOR, "invalid access mode: %s" % spec.get("accessMode"), field="spec.accessMode")
    _validate_replica_count(spec)
    _validate_block_size(spec)
    if not spec.get("image"):
        raise deny(VALIDATOR, "BUG: Invalid empty Setting.EngineImage")
    if not spec.get("dataSource") and spec.get("cloneMode"):
        raise deny(VALIDATOR, "BUG: CloneMode is non-empty while DataSource is empty", field=".spec.cloneMode")
    data_engine = spec.get("dataEngine") or "v1"
    if not spec.get("Standby") and spec.get("frontend", "") not in _FRONTENDS.get(data_engine, ()):
        # lm@v1.10.2 validator: a non-DR volume needs a frontend of its data engine; "" is refused.
        raise deny(VALIDATOR, "invalid volume frontend specified: %s for data engine %s " % (spec.get("frontend", ""), data_engine))
    if spec.get("migratable") and spec.get("accessMode") != "rwx":
        raise deny(VALIDATOR, "migratable volumes are only supported in ReadWriteMany (rwx) access mode")
    _check_volume(obj)
    engine_setting = "v2-data-engine" if data_engine == "v2" else "v1-data-engine"
    if not lh_settings.get_bool(store, engine_setting, default=data_engine == "v1"):
        raise deny(VALIDATOR, "%s data engine is not enabled" % engine_setting, code=403)
    _validate_snapshot_limits(spec)
    _validate_backup_target(store, "", spec.get("backupTargetName") or "")


def _validate_update(store, obj, old):
    spec = obj.get("spec") or {}
    old_spec = old.get("spec") or {}
    name = obj["metadata"].get("name", "")
    new_size, old_size = parse_size(spec.get("size")), parse_size(old_spec.get("size"))
    if new_size < old_size and not (obj.get("status") or {}).get("expansionRequired"):
        raise deny(VALIDATOR, "shrinking volume %s size from %d to %d is not supported" % (name, old_size, new_size), field="spec.size")
    _validate_replica_count(spec)
    if spec.get("accessMode") not in ("rwo", "rwx"):
        raise deny(VALIDATOR, "invalid access mode: %s" % spec.get("accessMode"), field="spec.accessMode")
    for field in ("dataSource", "cloneMode"):
        if (old_spec.get(field) or "") != (spec.get(field) or ""):
            raise deny(VALIDATOR, "%s is immutable" % ".spec." + field, field=".spec." + field)
    _check_volume(obj)
    # ref §1.5: the compression method and the block size cannot change later.
    if old_spec.get("backupCompressionMethod") and old_spec.get("backupCompressionMethod") != spec.get("backupCompressionMethod"):
        raise deny(VALIDATOR, "changing backup compression method for volume %s is not supported" % name, field="spec.backupCompressionMethod")
    old_block = int(old_spec.get("backupBlockSize") or 0)
    old_block_valid = old_block in BACKUP_BLOCK_SIZES and old_size % old_block == 0
    if old_block_valid and str(old_block) != str(spec.get("backupBlockSize")):
        raise deny(VALIDATOR, "changing backup block size for volume %s is not supported" % name, field="spec.backupBlockSize")
    _validate_block_size(spec)
    if old_spec.get("dataEngine") and old_spec.get("dataEngine") != spec.get("dataEngine"):
        raise deny(VALIDATOR, "changing data engine for volume %s is not supported" % name)
    _validate_snapshot_limits(spec)
    _validate_backup_target(store, old_spec.get("backupTargetName") or "", spec.get("backupTargetName") or "")


def register(chain, ctx):
    """Install the volume mutator and validator on ``chain`` (reads go through ``ctx.store``), as Longhorn's webhook server does."""
    store = ctx.store

    def _ours(request):
        return request.rtype.key == VOLUMES and request.subresource is None and request.operation in ("CREATE", "UPDATE")

    def mutate(request):
        if not _ours(request):
            return
        if request.operation == "CREATE":
            _mutate_create(store, request.obj)
        else:
            _mutate_update(store, request.obj, request.old)

    def validate(request):
        if not _ours(request):
            return
        try:
            if request.operation == "CREATE":
                _validate_create(store, request.obj)
            else:
                _validate_update(store, request.obj, request.old)
        except ValueError as exc:
            raise deny(VALIDATOR, str(exc)) from None

    chain.add_mutator(mutate)
    chain.add_validator(validate)
