# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission rules of Longhorn's webhooks for the backup-side kinds.

Modelled on ``lm@v1.10.2:webhook/resources/*/{mutator,validator}.go`` (ref §1): the
``longhorn.io`` finalizer, name rules, BackupTarget, Backup, BackupVolume, Snapshot,
RecurringJob, Setting and VolumeAttachment. Volumes, SystemBackups and SystemRestores
are in volume_webhooks.py / system_webhooks.py.

Longhorn's webhook rules name the resources, not their ``/status`` subresource, so status
writes skip these hooks. Denials are ``werror.NewInvalidError``: HTTP 422, reason Invalid;
errors that are not AdmitErrors become 500 InternalError (webhook/admission/admission.go).
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse

from ..context import LONGHORN_NAMESPACE
from .. import api_errors as errors
from . import settings as lh_settings
from . import targets as lh_targets

MUTATOR = "mutator.longhorn.io"
VALIDATOR = "validator.longhorn.io"
GROUP = "longhorn.io"
LONGHORN_FINALIZER = "longhorn.io"

# Kinds whose mutator adds the finalizer (common.GetLonghornFinalizerPatchOpIfNeeded callers).
# volumes and systembackups get it from volume_webhooks / system_webhooks.
FINALIZED_PLURALS = ("backups", "backuptargets", "backupvolumes", "snapshots", "volumeattachments",
                     "engineimages", "nodes", "engines", "replicas")

LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
LABEL_VOLUME = "longhornvolume"
LABEL_VOLUME_ACCESS_MODE = "longhorn.io/volume-access-mode"

# ref §1: util.ValidateName / ValidateString, datastore.NameMaximumLength.
VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]+$")
VALID_STRING = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_MAXIMUM_LENGTH = 40
BACKUP_BLOCK_SIZES = (2 * 1024 * 1024, 16 * 1024 * 1024)
BACKUP_BLOCK_SIZE_INVALID = -1

RECURRING_JOB_TASKS = ("snapshot", "snapshot-force-create", "snapshot-cleanup", "snapshot-delete", "backup",
                       "backup-force-create", "filesystem-trim", "system-backup")
VOLUME_BACKUP_POLICIES = ("always", "if-not-present", "disabled")


def deny(webhook, message, code=422, field=""):
    """A webhook refusal as the API server relays it (werror.NewInvalidError is 422/Invalid)."""
    error = errors.AdmissionDenied(webhook, message, code=code)
    error.reason = {400: "BadRequest", 403: "Forbidden", 409: "Conflict", 422: "Invalid", 500: "InternalError"}.get(code, error.reason)
    if code == 422:
        cause = {"reason": "FieldValueInvalid", "message": message}
        if field:
            cause["field"] = field
        error.details = {"causes": [cause]}
    return error


def not_found(singular, name):
    """A lister NotFound as Longhorn's messages print it: ``snapshot.longhorn.io "x" not found``."""
    return '%s.longhorn.io "%s" not found' % (singular, name)


def auto_correct_name(name, max_length=NAME_MAXIMUM_LENGTH):
    """util.AutoCorrectName: lowercase; over-long names get "-" + 8 hex of their SHA-512."""
    new_name = name.lower()
    if len(name) > max_length:
        suffix = "-" + hashlib.sha512(name.encode("utf-8")).hexdigest()[:8]
        new_name = new_name[:max_length - len(suffix)].rstrip("-") + suffix
    return new_name


# --- cron (robfig/cron v3 ParseStandard) --------------------------------------------------------

_CRON_FIELDS = (("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
                ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
                ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron_number(text, low, names):
    if names and text.upper() in names:
        return names.index(text.upper()) + low
    if not text.isdigit():
        raise ValueError("failed to parse int from %s: strconv.Atoi: parsing %s: invalid syntax" % (text, json.dumps(text)))
    return int(text)


def _check_cron_field(text, low, high, names):
    for part in text.split(","):
        range_part, _slash, step = part.partition("/")
        if range_part in ("*", "?"):
            start, end = low, high
        else:
            first, _dash, last = range_part.partition("-")
            start = _cron_number(first, low, names)
            end = _cron_number(last, low, names) if last else start
        if step:
            if not step.isdigit():
                raise ValueError("failed to parse int from %s: strconv.Atoi: parsing %s: invalid syntax" % (step, json.dumps(step)))
            if int(step) == 0:
                raise ValueError("step of range should be a positive number: %s" % part)
        if start < low:
            raise ValueError("beginning of range (%d) below minimum (%d): %s" % (start, low, part))
        if end > high:
            raise ValueError("end of range (%d) above maximum (%d): %s" % (end, high, part))
        if start > end:
            raise ValueError("beginning of range (%d) beyond end of range (%d): %s" % (start, end, part))


def validate_cron(spec):
    """cron.ParseStandard: 5 fields or a @descriptor / @every <duration>; raises ValueError like robfig/cron."""
    spec = (spec or "").strip()
    if not spec:
        raise ValueError("empty spec string")
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        _tz, _sep, spec = spec.partition(" ")
        spec = spec.strip()
    if spec.startswith("@"):
        if spec in _CRON_DESCRIPTORS:
            return
        if spec.startswith("@every "):
            if not re.match(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$", spec[len("@every "):].strip()):
                raise ValueError("failed to parse duration %s" % spec)
            return
        raise ValueError("unrecognized descriptor: %s" % spec)
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError("expected exactly 5 fields, found %d: %s" % (len(fields), json.dumps(fields).replace('"', "")))
    for text, (_name, low, high, names) in zip(fields, _CRON_FIELDS):
        _check_cron_field(text, low, high, names)


# --- label validation (util.ValidateSnapshotLabels: keys are qualified names) -------------------

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def qualified_name_error(key):
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " \
               "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is " \
               "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " \
               "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is " \
               "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    return None


def validate_backup_labels(labels):
    for key, value in (labels or {}).items():
        problem = qualified_name_error(key)
        if problem:
            raise ValueError("at least one error encountered while validating backup label with key %s: %s" % (key, problem))
        if value == "":
            raise ValueError("value for label with key %s cannot be empty" % key)


class LonghornWebhooks:
    """The mutating and validating webhook of longhorn-manager for the backup-side kinds."""

    def __init__(self, store, ctx):
        self.store = store
        self.ctx = ctx
        self.config = ctx.config if ctx is not None else None

    # --- helpers ---------------------------------------------------------------------------------

    @property
    def version(self):
        return self.config.longhorn_minor if self.config is not None else (1, 10)

    @property
    def legacy_settings(self):
        return self.config is not None and self.config.uses_backup_target_settings

    def _get(self, plural, name):
        rtype = self.store.registry.by_plural(plural, GROUP)
        if rtype is None or not name:
            return None
        return self.store.try_get(rtype, LONGHORN_NAMESPACE, name)

    def _list(self, plural):
        rtype = self.store.registry.by_plural(plural, GROUP)
        if rtype is None:
            return []
        return self.store.list(rtype, LONGHORN_NAMESPACE)[0]

    # --- dispatch --------------------------------------------------------------------------------

    def mutate(self, request):
        rtype = request.rtype
        if rtype.group != GROUP or request.subresource or request.operation == "DELETE":
            return
        plural = rtype.plural
        if plural in FINALIZED_PLURALS:
            self._add_finalizer(request.obj)
        handler = getattr(self, "_mutate_" + plural, None)
        if handler is not None:
            handler(request)

    def validate(self, request):
        rtype = request.rtype
        if rtype.group != GROUP or request.subresource:
            return
        if request.operation == "UPDATE" and self._removing_finalizer(request):
            # common.IsRemovingLonghornFinalizer: controllers may always drop the finalizer of a deleted object.
            return
        handler = getattr(self, "_validate_" + rtype.plural, None)
        if handler is not None:
            handler(request)

    @staticmethod
    def _add_finalizer(obj):
        meta = obj.setdefault("metadata", {})
        if meta.get("deletionTimestamp"):
            return
        finalizers = list(meta.get("finalizers") or [])
        if LONGHORN_FINALIZER not in finalizers:
            meta["finalizers"] = finalizers + [LONGHORN_FINALIZER]

    @staticmethod
    def _removing_finalizer(request):
        old_meta = (request.old or {}).get("metadata", {})
        new_meta = (request.obj or {}).get("metadata", {})
        return bool(old_meta.get("deletionTimestamp")) and LONGHORN_FINALIZER in (old_meta.get("finalizers") or []) \
            and LONGHORN_FINALIZER not in (new_meta.get("finalizers") or [])

    # --- BackupTarget (ref §1.1) -----------------------------------------------------------------

    def _validate_backuptargets(self, request):
        if request.operation == "DELETE":
            old = request.old
            if old["metadata"]["name"] == lh_targets.DEFAULT_BACKUP_TARGET:
                annotations = old["metadata"].get("annotations") or {}
                if "longhorn.io/delete-backup-target-from-longhorn" not in annotations:
                    raise deny(VALIDATOR, "deleting default backup target is not allowed")
            self._check_no_dr_volumes()
            return
        obj = request.obj
        name = obj["metadata"]["name"]
        spec = obj.get("spec") or {}
        url = spec.get("backupTargetURL") or ""
        secret = spec.get("credentialSecret") or ""
        if request.operation == "CREATE":
            if not VALID_NAME.match(name):
                raise deny(VALIDATOR, "invalid name %s" % name)
            self._check_backup_target_url(name, url)
            self._check_credential_secret(secret)
            return
        old_spec = (request.old or {}).get("spec") or {}
        url_changed = (old_spec.get("backupTargetURL") or "") != url
        secret_changed = (old_spec.get("credentialSecret") or "") != secret
        if url_changed:
            self._check_backup_target_url(name, url)
        if secret_changed:
            self._check_credential_secret(secret)
        if url_changed or secret_changed:
            self._check_no_dr_volumes()

    def _check_backup_target_url(self, name, url):
        """datastore.ValidateBackupTargetURL: format, then uniqueness across targets."""
        if not url:
            return
        parsed = urllib.parse.urlsplit(url)
        # checkBackupTargetURLFormat: "$" and "," are refused in the path ("$" is fine for cifs hidden shares).
        forbidden = r"[,]" if parsed.scheme == "cifs" else r"[$,]"
        found = re.findall(forbidden, urllib.parse.unquote(parsed.path))
        if found:
            raise deny(VALIDATOR, "url %s, contains %s" % (url, " or ".join(found)))
        try:
            new_path = lh_targets.backup_target_path(url)
        except ValueError as exc:
            raise deny(VALIDATOR, str(exc)) from None
        for target in self._list("backuptargets"):
            other_url = (target.get("spec") or {}).get("backupTargetURL") or ""
            if not other_url or urllib.parse.urlsplit(other_url).scheme != parsed.scheme:
                continue
            try:
                other_path = lh_targets.backup_target_path(other_url)
            except ValueError as exc:
                raise deny(VALIDATOR, str(exc)) from None
            if other_path == new_path and target["metadata"]["name"] != name:
                raise deny(VALIDATOR, "url %s is the same to backup target %s" % (url, target["metadata"]["name"]))

    def _check_credential_secret(self, secret_name):
        """validateCredentialSecret (ref §1.1): known keys must not carry surrounding spaces or newlines."""
        if not secret_name:
            return
        secret = self.store.try_get("secrets", LONGHORN_NAMESPACE, secret_name)
        if secret is None:
            return
        values = lh_targets.secret_values(secret)
        problems = []
        for key in lh_targets.CREDENTIAL_KEYS:
            value = values.get(key)
            if value is None or value.strip() == value:
                continue
            if value.startswith(" "):
                problems.append("invalid leading whitespace in %s" % key)
            if value.endswith(" "):
                problems.append("invalid trailing whitespace in %s" % key)
            if value.startswith("\n"):
                problems.append("invalid leading newline in %s" % key)
            if value.endswith("\n"):
                problems.append("invalid trailing newline in %s" % key)
        if problems:
            raise deny(VALIDATOR, "credential validation error(s): %s" % "; ".join(problems))

    def _check_no_dr_volumes(self):
        standby = sorted(v["metadata"]["name"] for v in self._list("volumes")
                         if (v.get("spec") or {}).get("Standby") or (v.get("status") or {}).get("isStandby"))
        if standby:
            raise deny(VALIDATOR, "cannot modify BackupTarget since there are existing standby volumes: map[%s]"
                       % " ".join("%s:{}" % name for name in standby))

    # --- Backup (ref §1.3) -----------------------------------------------------------------------

    def _mutate_backups(self, request):
        obj = request.obj
        spec = obj.setdefault("spec", {})
        if spec.get("labels") is None:
            spec["labels"] = {}
        if request.operation != "CREATE":
            return
        meta = obj["metadata"]
        labels = dict(meta.get("labels") or {})
        spec_labels = dict(spec.get("labels") or {})
        volume_name = labels.get(LABEL_BACKUP_VOLUME)
        if volume_name is None:
            snapshot_name = spec.get("snapshotName") or ""
            if not snapshot_name:
                raise deny(MUTATOR, "cannot find the backup volume label for backup %s" % meta["name"])
            snapshot = self._get("snapshots", snapshot_name)
            if snapshot is None:
                # Not an AdmitError: the webhook answers 500.
                raise deny(MUTATOR, "failed to get the snapshot %s: %s" % (snapshot_name, not_found("snapshot", snapshot_name)), code=500)
            snap_volume = (snapshot.get("spec") or {}).get("volume", "")
            if self._get("volumes", snap_volume) is None:
                raise deny(MUTATOR, "failed to get the volume %s of the snapshot %s of the backup %s: %s"
                           % (snap_volume, snapshot_name, meta["name"], not_found("volume", snap_volume)), code=500)
            volume_name = snap_volume
            labels[LABEL_BACKUP_VOLUME] = volume_name
        volume = self._get("volumes", volume_name)
        if LABEL_VOLUME_ACCESS_MODE not in spec_labels:
            access_mode = ((volume or {}).get("spec") or {}).get("accessMode") or "rwo"
            spec_labels[LABEL_VOLUME_ACCESS_MODE] = access_mode
        spec["labels"] = spec_labels
        if not spec.get("backupMode"):
            spec["backupMode"] = "incremental"
        if spec.get("snapshotName") and self.version >= (1, 10):
            if volume is None:
                raise deny(MUTATOR, "failed to get backup block size from the volume %s of backup %s: %s"
                           % (volume_name, meta["name"], not_found("volume", volume_name)))
            block_size = str((volume.get("spec") or {}).get("backupBlockSize") or "0")
            if str(spec.get("backupBlockSize") or "0") != block_size:
                spec["backupBlockSize"] = block_size
        if LABEL_BACKUP_TARGET not in labels:
            if volume is None:
                raise deny(MUTATOR, "failed to get the volume %s of backup %s: %s" % (volume_name, meta["name"], not_found("volume", volume_name)))
            labels[LABEL_BACKUP_TARGET] = (volume.get("spec") or {}).get("backupTargetName") or ""
        meta["labels"] = labels

    def _block_size_error(self, backup, allow_invalid):
        """types.ValidateBackupBlockSize with the labelled volume's size (v1.10+)."""
        raw = (backup.get("spec") or {}).get("backupBlockSize")
        try:
            block_size = int(str(raw if raw not in (None, "") else "0"))
        except ValueError:
            return "unsupported BackupBlockSize: %s" % raw
        if allow_invalid and block_size == BACKUP_BLOCK_SIZE_INVALID:
            return None
        if block_size not in BACKUP_BLOCK_SIZES:
            return "unsupported BackupBlockSize: %d" % block_size
        volume = self._get("volumes", (backup["metadata"].get("labels") or {}).get(LABEL_BACKUP_VOLUME))
        if volume is not None:
            size = int(str((volume.get("spec") or {}).get("size") or "0"))
            if size % block_size:
                return "volume size %d must be an integer multiple of the backup block size %d" % (size, block_size)
        return None

    def _validate_backups(self, request):
        obj = request.obj
        if request.operation == "UPDATE":
            if self.version < (1, 10):
                return
            old_size = str((request.old.get("spec") or {}).get("backupBlockSize") or "0")
            new_size = str((obj.get("spec") or {}).get("backupBlockSize") or "0")
            if old_size != new_size:
                if self._block_size_error(request.old, False) is None:
                    raise deny(VALIDATOR, "changing backup block size for backup %s is not supported; only changing invalid backup "
                                          "block size is supported" % obj["metadata"]["name"])
                if self._block_size_error(obj, False) is not None:
                    raise deny(VALIDATOR, "invalid backup block size %s for backup %s" % (new_size, obj["metadata"]["name"]))
            return
        if request.operation != "CREATE":
            return
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        labels = meta.get("labels") or {}
        if not VALID_NAME.match(meta["name"]):
            raise deny(VALIDATOR, "invalid name %s" % meta["name"])
        if spec.get("backupMode") not in ("full", "incremental"):
            raise deny(VALIDATOR, "BackupMode %s is not a valid option" % spec.get("backupMode", ""))
        target_name = labels.get(LABEL_BACKUP_TARGET) or ""
        if not target_name:
            raise deny(VALIDATOR, "missing backup target label on backup object")
        target = self._get("backuptargets", target_name)
        if target is None:
            raise deny(VALIDATOR, "failed to get backup target %s: %s" % (target_name, not_found("backuptarget", target_name)))
        if self.version >= (1, 10):
            problem = self._block_size_error(obj, True)
            if problem:
                raise deny(VALIDATOR, problem)
        if not (target.get("status") or {}).get("available"):
            raise deny(VALIDATOR, "backup target %s is not available" % target_name)
        label_volume = labels.get(LABEL_BACKUP_VOLUME, "")
        snapshot_name = spec.get("snapshotName") or ""
        if snapshot_name:
            snapshot = self._get("snapshots", snapshot_name)
            if snapshot is None:
                raise deny(VALIDATOR, "snapshot %s is invalid" % snapshot_name)
            volume = self._get("volumes", (snapshot.get("spec") or {}).get("volume"))
            if volume is None:
                raise deny(VALIDATOR, "volume %s is invalid" % (snapshot.get("spec") or {}).get("volume"))
            if label_volume != volume["metadata"]["name"]:
                raise deny(VALIDATOR, "snapshot volume name %s and label volume name %s does not match" % (volume["metadata"]["name"], label_volume))
            volume_target = (volume.get("spec") or {}).get("backupTargetName") or ""
            if volume_target != target_name:
                raise deny(VALIDATOR, "volume backup target %s and label backup target %s does not match" % (volume_target, target_name))

    # --- BackupVolume (ref §1.4) -----------------------------------------------------------------

    def _validate_backupvolumes(self, request):
        if request.operation not in ("CREATE", "UPDATE") or self.legacy_settings:
            return  # up to v1.7 the spec has only syncRequestedAt
        spec = request.obj.get("spec") or {}
        if not spec.get("backupTargetName"):
            raise deny(VALIDATOR, "backup target name cannot be empty")
        if not spec.get("volumeName"):
            raise deny(VALIDATOR, "volume name cannot be empty")

    # --- Snapshot (ref §1.6) ---------------------------------------------------------------------

    def _mutate_snapshots(self, request):
        if request.operation != "CREATE":
            return
        obj = request.obj
        volume_name = (obj.get("spec") or {}).get("volume") or ""
        volume = self._get("volumes", volume_name)
        if volume is None:
            raise deny(MUTATOR, "failed to get volume %s: %s" % (volume_name, not_found("volume", volume_name)), field="spec.Volume")
        meta = obj["metadata"]
        labels = dict(meta.get("labels") or {})
        labels[LABEL_VOLUME] = volume_name
        meta["labels"] = labels
        if not meta.get("ownerReferences"):
            meta["ownerReferences"] = [{"apiVersion": "longhorn.io/v1beta2", "kind": "Volume", "name": volume_name,
                                        "uid": volume["metadata"]["uid"]}]

    def _validate_snapshots(self, request):
        obj = request.obj
        if request.operation == "CREATE":
            for key, value in (obj["metadata"].get("labels") or {}).items():
                problem = qualified_name_error(key)
                if problem:
                    raise deny(VALIDATOR, "at least one error encountered while validating snapshot label with key %s: %s" % (key, problem))
                if value == "":
                    raise deny(VALIDATOR, "value for label with key %s cannot be empty" % key)
            if not (obj.get("spec") or {}).get("volume"):
                raise deny(VALIDATOR, "spec.volume is required", field="spec.volume")
        elif request.operation == "UPDATE":
            old = request.old
            if (obj.get("spec") or {}).get("volume") != (old.get("spec") or {}).get("volume"):
                raise deny(VALIDATOR, "spec.volume field is immutable", field="spec.volume")
            old_refs = old["metadata"].get("ownerReferences") or []
            if old_refs and obj["metadata"].get("ownerReferences") != old_refs:
                raise deny(VALIDATOR, "snapshot OwnerReferences field is immutable", field="metadata.ownerReferences")
            old_labels = old["metadata"].get("labels") or {}
            if LABEL_VOLUME in old_labels and (obj["metadata"].get("labels") or {}).get(LABEL_VOLUME) != old_labels[LABEL_VOLUME]:
                raise deny(VALIDATOR, "label %s is immutable" % LABEL_VOLUME, field="metadata.labels")

    # --- VolumeAttachment ------------------------------------------------------------------------

    def _validate_volumeattachments(self, request):
        obj = request.obj
        if request.operation == "UPDATE":
            old = request.old
            if (obj.get("spec") or {}).get("volume") != (old.get("spec") or {}).get("volume"):
                raise deny(VALIDATOR, "spec.volume field is immutable", field="spec.volume")
            old_refs = old["metadata"].get("ownerReferences") or []
            if old_refs and obj["metadata"].get("ownerReferences") != old_refs:
                raise deny(VALIDATOR, "VolumeAttachment's OwnerReferences field is immutable", field="metadata.ownerReferences")
        elif request.operation != "CREATE":
            return
        for ticket_id, ticket in ((obj.get("spec") or {}).get("attachmentTickets") or {}).items():
            if ticket_id != (ticket or {}).get("id"):
                raise deny(VALIDATOR, "the attachmentTickets map contains inconsistent attachment ticket ID: %s vs %s"
                           % (ticket_id, (ticket or {}).get("id", "")))

    # --- RecurringJob (ref §1.9) -----------------------------------------------------------------

    def _mutate_recurringjobs(self, request):
        obj = request.obj
        meta = obj["metadata"]
        spec = obj.setdefault("spec", {})
        original_name = meta.get("name", "")
        if request.operation == "CREATE":
            meta["name"] = auto_correct_name(original_name)
        if not spec.get("name"):
            spec["name"] = original_name
        for key, empty in (("groups", []), ("labels", {}), ("parameters", {})):
            if spec.get(key) is None:
                spec[key] = empty
        retain = int(spec.get("retain") or 0)
        task = spec.get("task")
        if task in ("snapshot-cleanup", "filesystem-trim"):
            if retain != 0:
                spec["retain"] = 0
        elif task == "snapshot-delete":
            if retain < 0:
                spec["retain"] = 0
        elif retain < 1:
            spec["retain"] = 1

    def _validate_recurringjobs(self, request):
        if request.operation not in ("CREATE", "UPDATE"):
            return
        obj = request.obj
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        if request.operation == "CREATE" and not VALID_NAME.match(meta["name"]):
            raise deny(VALIDATOR, "invalid name %s" % meta["name"])
        max_retain = lh_settings.get_int(self.store, lh_settings.RECURRING_JOB_MAX_RETENTION, 100)
        retain = int(spec.get("retain") or 0)
        if retain > max_retain:
            raise deny(VALIDATOR, "retain value should be less than or equal to %d" % max_retain)
        problem = self._recurring_job_problem(spec)
        if problem:
            raise deny(VALIDATOR, problem)

    @staticmethod
    def _recurring_job_problem(spec):
        """datastore.ValidateRecurringJob; concurrency 0 means 10 there but is not written back."""
        name, task, cron = spec.get("name") or "", spec.get("task") or "", spec.get("cron") or ""
        if not cron or not task or not name:
            return "invalid job {Name:%s Groups:%s Task:%s Cron:%s Retain:%s Concurrency:%s Labels:map[] Parameters:map[]}" % (
                name, "[" + " ".join(spec.get("groups") or []) + "]", task, cron, spec.get("retain", 0), spec.get("concurrency", 0))
        if task not in RECURRING_JOB_TASKS:
            return "recurring job task %s is not valid" % task
        try:
            validate_cron(cron)
        except ValueError as exc:
            return "invalid cron format(%s): %s" % (cron, exc)
        if len(name) > NAME_MAXIMUM_LENGTH:
            return "job name %s must be %d characters or less" % (name, NAME_MAXIMUM_LENGTH)
        for group in spec.get("groups") or []:
            if not VALID_STRING.match(group):
                return "invalid group name %s" % group
        try:
            validate_backup_labels(spec.get("labels"))
        except ValueError as exc:
            return str(exc)
        if task in ("backup", "backup-force-create"):
            for key, value in sorted((spec.get("parameters") or {}).items()):
                if key == "full-backup-interval":
                    if not re.match(r"^[+-]?\d+$", value or ""):
                        return "failed to validate recurring job backup task parameters: %s:%s is not number: strconv.Atoi: " \
                               "parsing %s: invalid syntax" % (key, value, json.dumps(value))
                elif key == "volume-backup-policy":
                    if value not in VOLUME_BACKUP_POLICIES:
                        return "failed to validate recurring job backup task parameters: %s:%s is not a valid value: " \
                               "supported values: [%s]" % (key, value, " ".join(VOLUME_BACKUP_POLICIES))
                else:
                    return "failed to validate recurring job backup task parameters: %s:%s is not a valid parameter" % (key, value)
        return None

    # --- Setting (ref §1.2) ----------------------------------------------------------------------

    def _known_settings(self):
        return lh_settings.default_settings(self.config.longhorn_version if self.config else "v1.10.2")

    def _mutate_settings(self, request):
        if self.version < (1, 10):
            return  # the setting mutator arrived in v1.10
        obj = request.obj
        name = obj["metadata"]["name"]
        known = self._known_settings()
        if name not in known:
            # ref §1.2: no definition for the backup-target Settings from v1.8 on.
            raise deny(MUTATOR, "setting %s does not exist" % name, field="metadata.name")
        default = known[name]
        value = obj.get("value", "")
        if default.startswith("{"):
            obj["value"] = self._per_engine_value(name, default, value)

    @staticmethod
    def _per_engine_value(name, default, value):
        """datastore.GetSettingValidValue: a single value applies to every data engine of the default."""
        engines = json.loads(default)
        text = (value or "").strip()
        if text.startswith("{"):
            try:
                given = json.loads(text)
            except ValueError:
                raise deny(MUTATOR, "failed to get valid value for setting %s: failed to parse JSON-formatted value %s" % (name, value),
                           field="value") from None
            values = {engine: str(v) for engine, v in given.items() if engine in engines}
        else:
            values = {engine: text for engine in engines}
        return json.dumps(values, separators=(",", ":"), sort_keys=True)

    def _validate_settings(self, request):
        name = (request.obj or request.old)["metadata"]["name"]
        known = self._known_settings()
        if request.operation == "DELETE":
            if name in known:
                raise deny(VALIDATOR, "setting %s can be modified but not deleted" % name, field="metadata.name")
            return
        if name not in known:
            raise deny(VALIDATOR, "value %s of settings %s is invalid: setting %s is not supported" % (request.obj.get("value", ""), name, name),
                       field="value")
        if request.operation == "UPDATE" and name in (lh_settings.CURRENT_LONGHORN_VERSION, "latest-longhorn-version",
                                                      "stable-longhorn-versions", "crd-api-version", lh_settings.DEFAULT_ENGINE_IMAGE,
                                                      "default-instance-manager-image", "default-backing-image-manager-image"):
            annotations = (request.obj["metadata"].get("annotations") or {})
            old_annotations = (request.old["metadata"].get("annotations") or {})
            if "longhorn.io/update-setting-from-longhorn" not in annotations and "longhorn.io/update-setting-from-longhorn" not in old_annotations:
                raise deny(VALIDATOR, "setting %s is read-only" % name, field="metadata.name")
        problem = self._setting_value_problem(name, known[name], request.obj.get("value", ""))
        if problem:
            raise deny(VALIDATOR, "value %s of settings %s is invalid: %s" % (request.obj.get("value", ""), name, problem), field="value")

    @staticmethod
    def _setting_value_problem(name, default, value):
        """The type checks of types.ValidateSetting for the bool and int settings."""
        if name == lh_settings.BACKUPSTORE_POLL_INTERVAL:
            if not re.match(r"^\d+$", (value or "").strip()):
                return "failed to parse single int value %s: strconv.ParseInt: parsing %s: invalid syntax" % (value, json.dumps(value))
            return None
        samples = list(json.loads(default).values()) if default.startswith("{") else [default]
        given = list(json.loads(value).values()) if (value or "").strip().startswith("{") else [value]
        for sample in samples[:1]:
            for item in given:
                item = (item or "").strip()
                if sample in ("true", "false") and item.lower() not in ("true", "false", "1", "0", "t", "f"):
                    return "failed to parse single bool value %s: strconv.ParseBool: parsing %s: invalid syntax" % (item, json.dumps(item))
                if re.match(r"^\d+$", sample) and not re.match(r"^[+-]?\d+$", item):
                    return "failed to parse single int value %s: strconv.ParseInt: parsing %s: invalid syntax" % (item, json.dumps(item))
        return None


def register(chain, ctx):
    """Install Longhorn's mutator and validator on ``chain``; the rules read through ``ctx.store``."""
    hooks = LonghornWebhooks(ctx.store, ctx)
    chain.add_mutator(hooks.mutate)
    chain.add_validator(hooks.validate)
    return hooks
