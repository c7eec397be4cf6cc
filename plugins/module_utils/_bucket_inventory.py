# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Inventory, freshness and integrity of a Longhorn backupstore read over plain S3.

The logic behind minio_bucket_check, kept out of the module so that it can be
unit-tested with any boto3-like client. Nothing here writes to the bucket
except ``write_probe`` (put, get and delete one probe object).

How the quick inventory stays cheap (see ``BucketInspector.inventory``):

* one paginated LIST of ``<prefix>/backupstore/`` (no delimiter) gives every
  key, size and LastModified: backup counts, block counts, bytes stored and
  lock ages come from it;
* every ``volume.cfg`` is fetched, concurrently;
* of the backup cfgs only those that may be incomplete are read: ones whose
  size is that of Longhorn's in-progress stub, or that are newer than the cfg
  of ``volume.cfg``'s ``LastBackupName`` (a completed backup always rewrites
  volume.cfg, ref §3.3). ``integrity: structure|full`` reads every cfg.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backupstore as bs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import (
    BotoCoreError,
    ClientError,
    S3Error,
    call_with_retry,
    classify,
    error_code,
    list_object_pages,
)

INTEGRITY_LEVELS = ("none", "structure", "full")
FAIL_ON_CHOICES = ("unreachable", "stale", "missing", "integrity", "problems")
# Longer lists in the result are cut to this many entries (the counts stay exact).
MAX_LISTED = 100
# How many names a fail_on summary spells out per category.
SUMMARY_NAMES = 5
WRITE_PROBE_NAME = ".longhorn-dr-write-probe-"
# The manifest of one cluster-state export (homelab.longhorn_dr.cluster_state), written after its files.
CLUSTER_STATE_MANIFEST = "manifest.json"
MAX_AGE_HELP = "use seconds or a duration such as 90s, 30m, 24h, 1d, 2w or 1h30m"
# How far a backup or export time may lie after the clock it is measured against before it counts as
# a clock problem rather than as fresh (the 5 minutes of Kerberos' default clock skew).
FUTURE_TOLERANCE_SECONDS = 300
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
# Longhorn's in-progress backup cfg: the Go Backup struct with only Name, VolumeName and
# CompressionMethod set (backupstore deltablock.go performBackup, ref §3.3 backup cfg).
_STUB_CFG = ('{"Name":"%s","VolumeName":"%s","SnapshotName":"","SnapshotCreatedAt":"","CreatedTime":"","Size":"0",'
             '"Labels":null,"Parameters":null,"IsIncremental":false,"CompressionMethod":"gzip",'
             '"NewlyUploadedDataSize":"0","ReUploadedDataSize":"0","ProcessingBlocks":null,"SingleFile":{"FilePath":""}}')
# A complete cfg is at least CreatedTime (20 characters) and a snapshot name longer than the stub;
# the slack lets a future field or two grow the stub and still be recognised.
_STUB_SLACK = 16
_LOCK_TYPES = {1: "backup-or-restore", 2: "deletion"}


class BucketCheckError(Exception):
    """The check cannot go on; the message is safe to show (no credentials)."""

    def __init__(self, message, code=None, kind="error"):
        super().__init__(message)
        self.code = code
        self.kind = kind


class InvalidOption(ValueError):
    """A bad option value; the message names the option and the value."""


def parse_max_age(value):
    """Seconds from an int, a numeric string or a duration such as ``24h``, ``30m``, ``1d`` or ``1h30m``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidOption("max_age: invalid value %r; %s" % (value, MAX_AGE_HELP))
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        elif _DURATION.match(text):
            seconds = sum(int(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
        else:
            raise InvalidOption("max_age: invalid duration %r; %s" % (value, MAX_AGE_HELP))
    if seconds <= 0:
        raise InvalidOption("max_age: %r is not a positive duration; %s" % (value, MAX_AGE_HELP))
    return seconds


def is_fresh(age_seconds, max_age, future_tolerance=FUTURE_TOLERANCE_SECONDS):
    """Fresh: a known age no older than ``max_age`` and not further in the future than ``future_tolerance``."""
    return age_seconds is not None and -future_tolerance <= age_seconds <= max_age


def format_duration(seconds):
    """``93784`` -> ``1d2h3m4s``: short and exact, for summaries."""
    seconds = int(seconds)
    if seconds <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size:
            parts.append("%d%s" % (seconds // size, unit))
            seconds %= size
    return "".join(parts)


def stub_size_limit(volume_name, backup_name):
    """Largest size (bytes) at which a backup cfg may still be Longhorn's in-progress stub."""
    return len(_STUB_CFG % (backup_name, volume_name)) + _STUB_SLACK


def sample_selected(seed, volume, checksum, percent):
    """Whether a block is in the ``percent`` sample for ``seed``: stable for the same seed, spread over blocks."""
    if percent >= 100:
        return True
    digest = hashlib.sha256(("%s\0%s\0%s" % (seed, volume, checksum)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < percent * (1 << 64) // 100


def _iso(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _problem(volume, kind, message):
    return {"volume": volume, "kind": kind, "message": message}


def _bounded(items):
    return items[:MAX_LISTED]


def _names(items, limit=SUMMARY_NAMES):
    items = list(items)
    text = ", ".join(str(item) for item in items[:limit])
    if len(items) > limit:
        text += " and %d more" % (len(items) - limit)
    return text


class VolumeDir:
    """What the LIST shows under ``volumes/<h1>/<h2>/<name>/``."""

    __slots__ = ("name", "hash_path", "path", "cfg_obj", "backups", "blocks", "block_bytes", "locks", "cfg_future")

    def __init__(self, name, hash_path, path):
        self.name = name
        self.hash_path = hash_path
        self.path = path
        self.cfg_obj = None     # (key, size, last_modified) of volume.cfg
        self.backups = {}       # backup name -> (key, size, last_modified)
        self.blocks = {}        # checksum -> size
        self.block_bytes = 0
        self.locks = []         # (key, size, last_modified)
        self.cfg_future = None

    @property
    def placed(self):
        """Longhorn finds a volume only under the hash path of its name (ref §3.3 <h1>/<h2>)."""
        return bs.volume_hash_path(self.name) == self.hash_path


class Listing:
    """The backupstore as one LIST sees it."""

    def __init__(self, root):
        self.root = root
        self.volume_dirs = {}       # "<h1>/<h2>/<name>" -> VolumeDir
        self.system_backups = {}    # (version, name) -> {"cfg": obj, "zip": obj}
        self.object_count = 0
        self.stored_bytes = 0
        self.system_backup_bytes = 0
        self.backing_image_bytes = 0
        self.other_bytes = 0
        self.server_time = None

    def add(self, key, size, modified):
        """Sort one object into the layout."""
        self.object_count += 1
        self.stored_bytes += size
        rest = key[len(self.root):]
        if rest.startswith("volumes/"):
            parts = rest.split("/", 4)
            if len(parts) == 5 and all(parts[1:5]):
                self._add_volume_object(parts, key, size, modified)
                return
        elif rest.startswith("system-backups/"):
            parts = rest.split("/")
            self.system_backup_bytes += size
            if len(parts) == 4 and parts[3] in ("system-backup.cfg", "system-backup.zip"):
                entry = self.system_backups.setdefault((parts[1], parts[2]), {"cfg": None, "zip": None})
                entry["cfg" if parts[3].endswith(".cfg") else "zip"] = (key, size, modified)
            return
        elif rest.startswith("backing-images/"):
            self.backing_image_bytes += size
            return
        self.other_bytes += size

    def _add_volume_object(self, parts, key, size, modified):
        _volumes, level1, level2, name, tail = parts
        dir_key = "%s/%s/%s" % (level1, level2, name)
        volume = self.volume_dirs.get(dir_key)
        if volume is None:
            volume = VolumeDir(name, "%s/%s" % (level1, level2), "%svolumes/%s/" % (self.root, dir_key))
            self.volume_dirs[dir_key] = volume
        if tail == "volume.cfg":
            volume.cfg_obj = (key, size, modified)
        elif tail.startswith("backups/"):
            backup = bs.backup_name_from_cfg_key(tail)
            if backup and tail.count("/") == 1:
                volume.backups[backup] = (key, size, modified)
        elif tail.startswith("blocks/"):
            base = tail.rsplit("/", 1)[-1]
            if base.endswith(".blk"):
                volume.blocks[base[:-4]] = size
                volume.block_bytes += size
        elif tail.startswith("locks/") and tail.endswith(".lck"):
            volume.locks.append((key, size, modified))


class BucketInspector:
    """One bucket check. ``client`` is a boto3 S3 client (or anything with the same methods)."""

    def __init__(self, client, bucket, prefix="", concurrency=16, retries=4, sleep=time.sleep, now=None):
        self.client = client
        self.bucket = bucket
        self.prefix = (prefix or "").strip("/")
        self.root = bs.backupstore_root(self.prefix)
        self.concurrency = max(1, int(concurrency))
        self.retries = retries
        self.sleep = sleep
        self._now = now
        self.warnings = []
        self._warn_lock = threading.Lock()

    # ---- S3 calls ----------------------------------------------------------------------
    def _call(self, action, func, **kwargs):
        try:
            return call_with_retry(func, retries=self.retries, sleep=self.sleep, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, action) from None

    def fetch(self, key):
        """The object's bytes; S3Error(kind="missing") when it is gone."""
        def read_once():
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return self._call("get object %s" % key, read_once)

    def warn(self, message):
        with self._warn_lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def now(self, listing=None):
        if self._now is not None:
            return self._now
        if listing is not None and listing.server_time is not None:
            return listing.server_time
        return datetime.datetime.now(datetime.timezone.utc)

    # ---- listing -----------------------------------------------------------------------
    def list_pages(self, prefix, action):
        """The pages of a LIST under ``prefix`` (a listing cut short raises S3Error ``TruncatedListing``)."""
        return list_object_pages(self.client, self.bucket, prefix, action, retries=self.retries, sleep=self.sleep)

    def list_backupstore(self):
        """One paginated LIST of every key under the backupstore root (no delimiter).

        The first failing page raises S3Error, which is how access problems are detected.
        """
        listing = Listing(self.root)
        for page in self.list_pages(self.root, "list objects in bucket %s" % self.bucket):
            listing.server_time = _server_time(page) or listing.server_time
            for obj in page.get("Contents") or ():
                listing.add(obj["Key"], int(obj.get("Size") or 0), _aware(obj.get("LastModified")))
        return listing

    # ---- bucket settings ---------------------------------------------------------------
    def bucket_settings(self):
        """Versioning, object lock and lifecycle rules, plus the problems they imply (ref §3.3 Object Lock / WORM)."""
        settings = {"versioning": None, "mfa_delete": None, "object_lock": None, "lifecycle_rules": None}
        problems = []
        versioning = self._optional_setting("GetBucketVersioning", "bucket versioning",
                                            self.client.get_bucket_versioning, ())
        if versioning is not None:
            settings["versioning"] = versioning.get("Status") or "Disabled"
            settings["mfa_delete"] = versioning.get("MFADelete") or "Disabled"
        lock = self._optional_setting("GetObjectLockConfiguration", "object lock configuration",
                                      self.client.get_object_lock_configuration,
                                      ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"))
        if lock is not None:
            settings["object_lock"] = _object_lock(lock)
            retention = settings["object_lock"]["default_retention"]
            if retention:
                problems.append(_problem(None, "retention_policy",
                                         "bucket %s has a default object lock retention (%s, %s %s); Longhorn forbids retention "
                                         "policies on the backupstore, and under one AWS S3 may refuse its uploads, which carry no "
                                         "Content-MD5" % (self.bucket, retention["mode"], retention["period"], retention["unit"])))
        rules = self._optional_setting("GetBucketLifecycleConfiguration", "lifecycle configuration",
                                       self.client.get_bucket_lifecycle_configuration, ("NoSuchLifecycleConfiguration",))
        if rules is not None:
            settings["lifecycle_rules"] = [_lifecycle_rule(rule, self.root) for rule in rules.get("Rules") or []]
            applying = [rule for rule in settings["lifecycle_rules"] if rule["applies_to_backupstore"]]
            if applying:
                problems.append(_problem(None, "lifecycle_rules",
                                         "bucket %s has %d enabled lifecycle rule(s) that apply to %s (%s); Longhorn forbids "
                                         "lifecycle rules on the backupstore, they delete or move backup data behind its back"
                                         % (self.bucket, len(applying), self.root, _names(rule["id"] or "(no id)" for rule in applying))))
        return settings, problems

    def _optional_setting(self, api, what, func, absent_codes):
        """One Get*Configuration call: {} when the bucket has none, None (and a warning) when it cannot be read."""
        try:
            return call_with_retry(func, retries=self.retries, sleep=self.sleep, Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc)
            if code in absent_codes:
                return {}
            error = classify(exc, "read the %s of bucket %s (%s)" % (what, self.bucket, api))
            if error.kind == "not_implemented":
                self.warn("%s is not supported by your storage provider (%s); its setting is unknown" % (api, error.code))
            else:
                self.warn(str(error))
            return None

    # ---- write probe -------------------------------------------------------------------
    def write_probe(self):
        """Put, read back and delete one object under the backupstore root, as Longhorn's lock files need (ref §3.3)."""
        key = "%s%s%s" % (self.root, WRITE_PROBE_NAME, uuid.uuid4().hex)
        body = json.dumps({"writer": "homelab.longhorn_dr.minio_bucket_check", "at": _iso(self.now())}).encode("utf-8")
        result = {"performed": True, "skipped_reason": None, "key": key, "put": False, "get": False, "delete": False,
                  "ok": False, "error_code": None, "error": None}
        step = "put"
        try:
            self._call("put probe object %s" % key, self.client.put_object, Bucket=self.bucket, Key=key, Body=body)
            result["put"] = True
            step = "get"
            if self.fetch(key) != body:
                raise S3Error("Failed to read back probe object %s: content differs" % key, code="ContentMismatch")
            result["get"] = True
        except S3Error as exc:
            result.update(error_code=exc.code, error=str(exc))
        finally:
            if result["put"]:
                try:
                    self._call("delete probe object %s" % key, self.client.delete_object, Bucket=self.bucket, Key=key)
                    result["delete"] = True
                except S3Error as exc:
                    step = "delete"
                    if result["error"] is None:
                        result.update(error_code=exc.code, error=str(exc))
        result["ok"] = result["put"] and result["get"] and result["delete"]
        problems = []
        if not result["ok"]:
            left = " The probe object was left behind." if result["put"] and not result["delete"] else ""
            problems.append(_problem(None, "write_probe_failed",
                                     "writing to %s failed at the %s step (%s); Longhorn needs PutObject and DeleteObject there "
                                     "for its lock files, even to restore.%s" % (self.root, step, result["error_code"], left)))
        return result, problems

    # ---- cluster-state export -----------------------------------------------------------
    def cluster_state(self, prefix, now):
        """The newest cluster-state export under ``prefix`` (from the bucket root), as homelab.longhorn_dr.cluster_state
        uploads them: ``<prefix><YYYYMMDDTHHMMSSZ>/manifest.json``, the manifest written last. Which export is newest is
        read from those folder names; the age from the manifest's ``exported_at``.

        No export is ``found: false``, not an error; an unreadable or malformed manifest sets ``error``.
        """
        root = (prefix or "").strip().strip("/")
        root = root + "/" if root else ""
        result = {"found": False, "key": None, "exported_at": None, "age_seconds": None, "format": None, "error": None,
                  "exports": 0}
        manifests = []
        try:
            for page in self.list_pages(root, "list objects in bucket %s under %s" % (self.bucket, root or "/")):
                for obj in page.get("Contents") or ():
                    rest = obj["Key"][len(root):]
                    folder, _slash, name = rest.partition("/")
                    if folder and name == CLUSTER_STATE_MANIFEST:
                        manifests.append(obj["Key"])
        except S3Error as exc:
            result["error"] = str(exc)
            return result
        result["exports"] = len(manifests)
        if not manifests:
            return result
        result["key"] = max(manifests)
        try:
            raw = self.fetch(result["key"])
        except S3Error as exc:
            result["error"] = str(exc)
            return result
        result["found"] = True
        try:
            manifest = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (ValueError, UnicodeDecodeError) as exc:
            result["error"] = "%s is not valid JSON: %s" % (result["key"], exc)
            return result
        if not isinstance(manifest, dict):
            result["error"] = "%s is not a JSON object" % result["key"]
            return result
        result["format"] = manifest.get("format") if isinstance(manifest.get("format"), str) else None
        try:
            exported = bs.parse_go_time(manifest.get("exported_at")) if isinstance(manifest.get("exported_at"), str) else None
        except bs.BackupstoreFormatError:
            exported = None
        if exported is None:
            result["error"] = "%s has no valid exported_at time (%r)" % (result["key"], manifest.get("exported_at"))
            return result
        exported = exported.replace(microsecond=0)
        result["exported_at"] = _iso(exported)
        # Negative when the export's time is after the S3 server's clock: a clock problem the gate refuses.
        result["age_seconds"] = int((now - exported).total_seconds())
        return result

    # ---- the whole check ---------------------------------------------------------------
    def run(self, integrity="none", sample_percent=100, sample_seed=None, max_age=None, expected_volumes=None,
            write_probe=False, retained_backups=None, compression_ratio=None, cluster_state_prefix=None):
        """Everything minio_bucket_check reports, as one dict (without ``changed``/``failed``)."""
        result = {
            "backupstore_prefix": self.root,
            "access": {"reachable": None, "credentials_valid": None, "bucket_exists": None, "readable": False,
                       "error_code": None, "error": None},
            "bucket_settings": {"versioning": None, "mfa_delete": None, "object_lock": None, "lifecycle_rules": None},
            "write_probe": {"performed": False, "skipped_reason": None if write_probe else "not requested", "key": None,
                            "put": False, "get": False, "delete": False, "ok": None, "error_code": None, "error": None},
            "volumes": [],
            "problems": [],
            "system_backups": [],
            "integrity": _empty_integrity(integrity, sample_percent, sample_seed),
            "stale": [],
            "missing": [],
            "capacity": None,
            "checked_at": None,
            "cluster_state": None,
        }
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bucket-check") as pool:
            inventory = Inventory(self, pool, integrity, sample_percent, sample_seed)
            try:
                listing = inventory.load(check_zips=integrity == "full")
            except S3Error as exc:
                result["access"] = _access_failure(exc)
                result["missing"] = sorted(set(expected_volumes or ()))
                result["checked_at"] = _iso(self.now())
                if cluster_state_prefix is not None:
                    result["cluster_state"] = {"found": False, "key": None, "exported_at": None, "age_seconds": None, "format": None,
                                               "error": "not read: the bucket could not be listed (%s)" % exc, "exports": 0}
                return result
            result["access"] = {"reachable": True, "credentials_valid": True, "bucket_exists": True, "readable": True,
                                "error_code": None, "error": None}
            now = self.now(listing)
            result["checked_at"] = _iso(now)
            settings_future = pool.submit(self.bucket_settings)
            probe_future = pool.submit(self.write_probe) if write_probe else None
            state_future = pool.submit(self.cluster_state, cluster_state_prefix, now) if cluster_state_prefix is not None else None
            volumes, volume_problems = inventory.volumes(now)
            result["integrity"] = inventory.integrity()
            inventory.annotate_integrity(volumes)
            system_backups, system_problems = inventory.system_backups()
            result["integrity"]["system_backup_failures"] = sum(1 for item in system_backups
                                                                if item["checksum"] in ("mismatch", "missing_zip"))
            result["bucket_settings"], settings_problems = settings_future.result()
            problems = []
            if probe_future is not None:
                result["write_probe"], problems = probe_future.result()
            if state_future is not None:
                result["cluster_state"] = state_future.result()
        problems = settings_problems + problems + volume_problems + system_problems
        result["volumes"] = volumes
        result["system_backups"] = system_backups
        result["problems"] = problems
        if max_age is not None:
            result["stale"] = [volume["name"] for volume in volumes if not is_fresh(volume["last_backup_age"], max_age)]
        if expected_volumes:
            backed_up = {volume["name"] for volume in volumes if volume["last_backup_name"]}
            result["missing"] = sorted(set(expected_volumes) - backed_up)
        result["capacity"] = inventory.capacity(volumes, retained_backups, compression_ratio)
        return result


class Inventory:
    """The listing plus what the GETs add: volume.cfg files, backup cfgs, lock files, blocks, system backups.

    Requests are queued as soon as what they depend on is known, so the phases overlap: after the
    LIST every volume.cfg (and with ``integrity`` every backup cfg and system backup) is queued at
    once, and with ``integrity: full`` a volume's blocks are queued as soon as its cfgs are read.
    """

    def __init__(self, inspector, pool, level="none", sample_percent=100, sample_seed=None):
        self.inspector = inspector
        self.pool = pool
        self.level = level
        self.deep = level != "none"
        self.sample_percent = sample_percent
        self.sample_seed = sample_seed
        self.listing = None
        self.cfg_futures = {}       # (volume dir path, backup name) -> future of (decoded cfg, error)
        self.backup_cfgs = {}       # volume dir path -> {backup name: decoded cfg}
        self.block_plans = {}       # volume dir path -> what the integrity check found or queued
        self.volume_damage = {}     # volume dir path -> {backup name: {"missing_blocks": n, "corrupt_blocks": n}}
        self.system_pending = {}
        self._plans_lock = threading.Condition()
        self._plans_pending = 0
        self._plan_errors = []

    def load(self, check_zips=False):
        """LIST, then queue every volume.cfg (and in deep mode every backup cfg) and the system backups.

        The GETs wait for the whole LIST on purpose: started while it pages, they slow the pages
        down on a busy server, and the LIST is the longest chain of requests in the check.
        """
        self.listing = self.inspector.list_backupstore()
        deep_volumes = []
        for volume in self.listing.volume_dirs.values():
            if not volume.placed:
                continue
            if volume.cfg_obj is not None:
                volume.cfg_future = self.pool.submit(self._read_volume_cfg, volume.cfg_obj[0])
            if self.deep:
                deep_volumes.append(volume)
        self._queue_system_backups(check_zips)
        with self._plans_lock:
            self._plans_pending = len(deep_volumes)
        for volume in deep_volumes:
            self._queue_all_cfgs(volume)
        return self.listing

    def _read_volume_cfg(self, key):
        try:
            return bs.decode_volume_cfg(self.inspector.fetch(key)), None
        except (S3Error, bs.BackupstoreFormatError) as exc:
            return None, exc

    def _read_backup_cfg(self, key):
        try:
            return bs.decode_backup_cfg(self.inspector.fetch(key)), None
        except (S3Error, bs.BackupstoreFormatError) as exc:
            return None, exc

    def _read_lock(self, key, modified, now):
        try:
            raw = self.inspector.fetch(key)
        except S3Error:
            raw = b""  # released since the LIST; its age still tells the story
        return bs.decode_lock(raw, modified, now=now)

    def _queue_all_cfgs(self, volume):
        """Deep mode: read every backup cfg; the volume's blocks are planned when the last one is in."""
        names = list(volume.backups)
        if not names:
            self._plan_blocks(volume)
            return
        remaining = {"count": len(names)}
        guard = threading.Lock()

        def one_done(_future):
            with guard:
                remaining["count"] -= 1
                last = remaining["count"] == 0
            if last:
                self._plan_blocks(volume)

        futures = []
        for name in names:
            future = self.pool.submit(self._read_backup_cfg, volume.backups[name][0])
            self.cfg_futures[(volume.path, name)] = future
            futures.append(future)
        for future in futures:
            future.add_done_callback(one_done)

    # ---- volumes -----------------------------------------------------------------------
    def volumes(self, now):
        """Inventory entries (sorted by name) and problems of every volume directory."""
        problems = []
        ready = []
        for dir_key in sorted(self.listing.volume_dirs):
            volume = self.listing.volume_dirs[dir_key]
            if not volume.placed:
                problems.append(_problem(volume.name, "misplaced_volume_dir",
                                         "%s is not under the hash path of its name (%s); Longhorn cannot find it"
                                         % (volume.path, bs.volume_hash_path(volume.name))))
                continue
            if volume.cfg_future is None:
                problems.append(_problem(volume.name, "missing_volume_cfg",
                                         "%s has no volume.cfg (%d backup cfg(s), %d block(s)); Longhorn reports this backup "
                                         "volume as an error" % (volume.path, len(volume.backups), len(volume.blocks))))
                continue
            cfg, error = volume.cfg_future.result()
            if cfg is None:
                problems.append(_problem(volume.name, "invalid_volume_cfg", "cannot read %svolume.cfg: %s" % (volume.path, error)))
                continue
            ready.append((volume, cfg))

        if not self.deep:
            # Quick inventory: only the backup cfgs that may be incomplete.
            for volume, cfg in ready:
                for name in self._cfgs_to_read(volume, cfg):
                    self.cfg_futures[(volume.path, name)] = self.pool.submit(self._read_backup_cfg, volume.backups[name][0])
        locks = {volume.path: [self.pool.submit(self._read_lock, key, modified, now) for key, _size, modified in volume.locks]
                 for volume, _cfg in ready if volume.locks}

        entries = []
        for volume, cfg in ready:
            read = {}
            unreadable = []
            for name in volume.backups:
                future = self.cfg_futures.get((volume.path, name))
                if future is None:
                    continue
                decoded, error = future.result()
                if decoded is None:
                    if not (isinstance(error, S3Error) and error.kind == "missing"):
                        unreadable.append(name)
                        problems.append(_problem(volume.name, "invalid_backup_cfg",
                                                 "cannot read backup cfg %s: %s" % (volume.backups[name][0], error)))
                    continue
                read[name] = decoded
            lock_states = [future.result() for future in locks.get(volume.path, ())]
            entry, volume_problems = self._volume_entry(volume, cfg, read, lock_states, now)
            entry["unreadable_backups"] = sorted(unreadable)
            entry["path"] = volume.path
            entries.append(entry)
            problems.extend(volume_problems)
        entries.sort(key=lambda item: item["name"])
        return entries, problems

    def _cfgs_to_read(self, volume, cfg):
        last = cfg.get("LastBackupName") or ""
        if not last or last not in volume.backups:
            # Nothing trustworthy to compare with: read them all (few, and a problem is reported anyway).
            return list(volume.backups)
        last_modified = volume.backups[last][2]
        return [name for name, (_key, size, modified) in volume.backups.items()
                if name != last and (size <= stub_size_limit(volume.name, name)
                                     or (modified is not None and last_modified is not None and modified > last_modified))]

    def _volume_entry(self, volume, cfg, read, lock_states, now):
        problems = []
        name = volume.name
        last_name = cfg.get("LastBackupName") or ""
        if last_name and last_name not in volume.backups:
            problems.append(_problem(name, "missing_last_backup",
                                     "volume.cfg names %s as the last backup, but %sbackups/backup_%s.cfg does not exist"
                                     % (last_name, volume.path, last_name)))
        incomplete = sorted(backup for backup, decoded in read.items() if not decoded["Complete"])
        # Newest complete backup: volume.cfg's, unless a cfg read shows a newer complete one (ref §3.3 LastBackupAt).
        newest_name, newest_at = None, None
        if last_name in volume.backups and not (last_name in read and not read[last_name]["Complete"]):
            newest_name, newest_at = last_name, cfg.get("LastBackupAtTime")
        for backup, decoded in read.items():
            at = decoded.get("SnapshotCreatedAtParsed") or decoded.get("CreatedTimeParsed")
            if decoded["Complete"] and at is not None and (newest_at is None or at > newest_at):
                newest_name, newest_at = backup, at
        active_locks = [lock for lock in lock_states if lock["active"]]
        stale_locks = [lock for lock in lock_states if not lock["active"]]
        if active_locks:
            problems.append(_problem(name, "active_lock",
                                     "%d lock file(s) younger than %d s (%s): a backup, restore or deletion is running"
                                     % (len(active_locks), bs.LOCK_VALIDITY_SECONDS,
                                        _names("%s, %ss old" % (lock["type"], lock["age_seconds"]) for lock in active_locks))))
        if stale_locks:
            problems.append(_problem(name, "stale_lock",
                                     "%d lock file(s) left over by an operation that ended without cleaning up (oldest %s); "
                                     "Longhorn ignores locks older than %d s" % (len(stale_locks), format_duration(
                                         max(lock["age_seconds"] for lock in stale_locks)), bs.LOCK_VALIDITY_SECONDS)))
        if incomplete and not active_locks:
            problems.append(_problem(name, "incomplete_backup",
                                     "%d backup cfg(s) without CreatedTime and no operation holding a lock (%s): aborted "
                                     "backups; Longhorn skips block garbage collection while they exist"
                                     % (len(incomplete), _names(incomplete))))
        status = bs.kubernetes_status(cfg["Labels"])
        age = int((now - newest_at).total_seconds()) if newest_at is not None else None
        entry = {
            "name": name,
            "size": cfg["Size"],
            "pvc_namespace": status.get("namespace") or None,
            "pvc_name": status.get("pvcName") or None,
            "pv_name": status.get("pvName") or None,
            "last_backup_name": newest_name,
            "last_backup_at": _iso(newest_at),
            # Negative when the backup's time is after the S3 server's clock (clock skew): never clamped to 0.
            "last_backup_age": age,
            "backup_count": len(volume.backups) - len(incomplete),
            "incomplete_backups": len(incomplete),
            "compression": cfg["CompressionMethod"],
            "block_count": cfg["BlockCount"],
            "data_stored": cfg["BlockCount"] * bs.DATA_STORED_BLOCK_SIZE,
            "stored_bytes": volume.block_bytes,
            "block_objects": len(volume.blocks),
            "storage_class": cfg.get("StorageClassName") or None,
            "data_engine": cfg.get("DataEngine") or "v1",
        }
        return entry, problems

    # ---- system backups ----------------------------------------------------------------
    def _queue_system_backups(self, check_zips):
        for (version, name), objects in sorted(self.listing.system_backups.items()):
            if objects["cfg"] is not None:
                self.system_pending[(version, name)] = self.pool.submit(self._system_backup, version, name, objects, check_zips)

    def system_backups(self):
        """ref §3.3 System backups: cfg fields, and with ``check_zips`` the zip's SHA-256 against ``Checksum``."""
        problems = []
        for (version, name), objects in sorted(self.listing.system_backups.items()):
            if objects["cfg"] is None:
                problems.append(_problem(None, "incomplete_system_backup",
                                         "system backup %s/%s has a zip but no system-backup.cfg: its upload did not finish "
                                         "(Longhorn writes the zip first)" % (version, name)))
        entries = []
        for key in sorted(self.system_pending):
            entry, problem = self.system_pending[key].result()
            entries.append(entry)
            if problem:
                problems.append(problem)
        return entries, problems

    def _system_backup(self, version, name, objects, check_zips):
        entry = {"name": name, "version": version, "created": None, "checksum": "not_checked", "zip_size": None,
                 "backup_target_url": None}
        try:
            cfg = bs.decode_system_backup_cfg(self.inspector.fetch(objects["cfg"][0]))
        except (S3Error, bs.BackupstoreFormatError) as exc:
            return entry, _problem(None, "invalid_system_backup_cfg", "cannot read %s: %s" % (objects["cfg"][0], exc))
        entry["name"] = cfg.get("Name") or name
        entry["version"] = cfg.get("LonghornVersion") or version
        entry["created"] = _iso(cfg.get("CreatedAtParsed"))
        # A system restore downloads the zip from this URL, not from the current target (ref §10 addendum).
        entry["backup_target_url"] = cfg.get("BackupTargetURL") or None
        if objects["zip"] is None:
            entry["checksum"] = "missing_zip"
            return entry, None
        entry["zip_size"] = objects["zip"][1]
        if check_zips:
            try:
                data = self.inspector.fetch(objects["zip"][0])
            except S3Error as exc:
                if exc.kind == "missing":
                    entry["checksum"] = "missing_zip"
                    return entry, None
                return entry, _problem(None, "unreadable_system_backup", "cannot download %s: %s" % (objects["zip"][0], exc))
            entry["checksum"] = "ok" if bs.sha256_hex(data) == (cfg.get("Checksum") or "").lower() else "mismatch"
        return entry, None

    # ---- integrity ---------------------------------------------------------------------
    def _plan_blocks(self, volume):
        """Runs once all cfgs of ``volume`` are read: existence from the LIST, and with ``full`` queue the downloads."""
        try:
            cfgs = {}
            for name in volume.backups:
                decoded, _error = self.cfg_futures[(volume.path, name)].result()
                if decoded is not None:
                    cfgs[name] = decoded
            referenced = {}
            for backup in sorted(cfgs):
                decoded = cfgs[backup]
                for block in decoded["Blocks"]:
                    checksum = block.get("BlockChecksum") or ""
                    if checksum and checksum not in referenced:
                        referenced[checksum] = (decoded["CompressionMethod"], decoded["BlockSize"])
            plan = {"cfgs": cfgs, "referenced": len(referenced), "missing": [], "verify": [],
                    "unreferenced": sum(1 for checksum in volume.blocks if checksum not in referenced)}
            for checksum, (method, block_size) in referenced.items():
                key = bs.block_key(self.listing.root, volume.name, checksum)
                if checksum not in volume.blocks:
                    plan["missing"].append((checksum, key))
                elif self.level == "full" and sample_selected(self.sample_seed, volume.name, checksum, self.sample_percent):
                    plan["verify"].append((checksum, key, self.pool.submit(self._verify_block, key, method, block_size)))
            self.block_plans[volume.path] = plan
        except Exception as exc:  # pylint: disable=broad-except
            # Raised again by integrity(); an exception in a future callback would only be logged.
            self._plan_errors.append(exc)
        finally:
            with self._plans_lock:
                self._plans_pending -= 1
                self._plans_lock.notify_all()

    def integrity(self):
        """ref §3.3 Integrity check: ``structure`` = referenced blocks exist, ``full`` = they also decompress and hash right."""
        report = _empty_integrity(self.level, self.sample_percent, self.sample_seed)
        if not self.deep:
            return report
        with self._plans_lock:
            while self._plans_pending:
                self._plans_lock.wait()
        if self._plan_errors:
            raise self._plan_errors[0]
        missing, corrupt = [], []
        volumes = sorted((volume for volume in self.listing.volume_dirs.values() if volume.path in self.block_plans),
                         key=lambda volume: volume.name)
        for volume in volumes:
            plan = self.block_plans[volume.path]
            self.backup_cfgs[volume.path] = plan["cfgs"]
            report["referenced_blocks"] += plan["referenced"]
            report["unreferenced_blocks"] += plan["unreferenced"]
            report["backups_read"] += len(plan["cfgs"])
            for checksum, key in plan["missing"]:
                missing.append(self._damage(volume, checksum, key, "missing from the bucket"))
            for checksum, key, future in plan["verify"]:
                size, reason = future.result()
                report["bytes_read"] += size
                report["checked_blocks"] += 1
                if reason == "missing":
                    missing.append(self._damage(volume, checksum, key, "missing from the bucket"))
                elif reason is not None:
                    corrupt.append(self._damage(volume, checksum, key, reason))
        if self.level == "structure":
            report["checked_blocks"] = report["referenced_blocks"]
        report["missing_blocks"] = len(missing)
        report["corrupt_blocks"] = len(corrupt)
        report["missing"] = _bounded(missing)
        report["corrupt"] = _bounded(corrupt)
        damaged = sorted({(item["volume"], backup) for item in missing + corrupt for backup in item["backups"]})
        report["damaged_backup_count"] = len(damaged)
        report["damaged_backups"] = _bounded([{"volume": volume, "backup": backup} for volume, backup in damaged])
        report["truncated"] = len(missing) > MAX_LISTED or len(corrupt) > MAX_LISTED or len(damaged) > MAX_LISTED
        return report

    def _verify_block(self, key, method, block_size):
        """(bytes downloaded, None when the block is sound else the reason or "missing")."""
        try:
            data = self.inspector.fetch(key)
        except S3Error as exc:
            if exc.kind == "missing":
                return 0, "missing"
            return 0, "cannot download: %s" % exc
        try:
            plain = bs.decompress(data, method)
        except bs.BackupstoreFormatError as exc:
            return len(data), str(exc)
        checksum = key.rsplit("/", 1)[-1][:-len(".blk")]
        actual = bs.block_checksum(plain)
        if actual != checksum:
            return len(data), "checksum mismatch: content hashes to %s" % actual
        if len(plain) != block_size:
            return len(data), "block holds %d bytes, the backup's block size is %d" % (len(plain), block_size)
        return len(data), None

    def _damage(self, volume, checksum, key, reason):
        cfgs = self.block_plans[volume.path]["cfgs"]
        backups = sorted(name for name, decoded in cfgs.items()
                         if any(block.get("BlockChecksum") == checksum for block in decoded["Blocks"]))
        # Exact per-backup counts, whatever the bounded lists of the report keep.
        counts = self.volume_damage.setdefault(volume.path, {})
        kind = "missing_blocks" if reason == "missing from the bucket" else "corrupt_blocks"
        for name in backups:
            counts.setdefault(name, {"missing_blocks": 0, "corrupt_blocks": 0})[kind] += 1
        return {"volume": volume.name, "block": checksum, "key": key, "reason": reason, "backups": _bounded(backups)}

    def annotate_integrity(self, entries):
        """Per volume: whether its blocks were checked, and which of its backups reference missing or corrupt blocks.

        Runs after ``integrity()``. ``integrity_checked`` is true only when every cfg of the volume was read and its
        blocks were planned, so a consumer can tell "checked, intact" from "not checked".
        """
        for entry in entries:
            path = entry.pop("path", None)
            entry["integrity_checked"] = self.deep and path in self.block_plans
            damage = self.volume_damage.get(path) or {}
            entry["damaged_backups"] = [dict(backup=name, **damage[name]) for name in sorted(damage)]

    # ---- capacity ----------------------------------------------------------------------
    def capacity(self, volumes, retained_backups, compression_ratio):
        """Bytes stored (from the LIST) and the planning projection: size x compression ratio x retained backups."""
        block_objects = 0
        block_bytes = 0
        raw_bytes = 0
        for volume in self.listing.volume_dirs.values():
            if not volume.blocks:
                continue
            block_objects += len(volume.blocks)
            block_bytes += volume.block_bytes
            raw_bytes += len(volume.blocks) * self._block_size(volume)
        measured = round(block_bytes / raw_bytes, 4) if raw_bytes else None
        ratio = compression_ratio if compression_ratio is not None else (measured if measured is not None else 1.0)
        projected_total = 0
        for volume in volumes:
            retained = retained_backups if retained_backups is not None else max(volume["backup_count"], 1)
            volume["projected_bytes"] = int(volume["size"] * ratio * retained)
            projected_total += volume["projected_bytes"]
        return {
            "stored_bytes": self.listing.stored_bytes,
            "object_count": self.listing.object_count,
            "block_objects": block_objects,
            "block_bytes": block_bytes,
            "system_backup_bytes": self.listing.system_backup_bytes,
            "backing_image_bytes": self.listing.backing_image_bytes,
            "measured_compression_ratio": measured,
            "compression_ratio": ratio,
            "retained_backups": retained_backups,
            "projected_bytes": projected_total,
        }

    def _block_size(self, volume):
        # Block sizes live in the backup cfgs (ref §3.3 Block size); without them assume Longhorn's default.
        for decoded in self.backup_cfgs.get(volume.path, {}).values():
            if decoded["Complete"]:
                return decoded["BlockSize"]
        return bs.DEFAULT_BLOCK_SIZE


def _empty_integrity(level, sample_percent, sample_seed):
    return {
        "level": level,
        "sample_percent": sample_percent if level == "full" else None,
        "sample_seed": sample_seed if level == "full" and sample_percent < 100 else None,
        "checked_blocks": 0,
        "missing_blocks": 0,
        "corrupt_blocks": 0,
        "referenced_blocks": 0,
        "unreferenced_blocks": 0,
        "backups_read": 0,
        "bytes_read": 0,
        "system_backup_failures": 0,
        "damaged_backup_count": 0,
        "missing": [],
        "corrupt": [],
        "damaged_backups": [],
        "truncated": False,
    }


def _access_failure(exc):
    """The ``access`` facts for a LIST that failed: which of reachable / credentials / bucket broke."""
    access = {"reachable": True, "credentials_valid": None, "bucket_exists": None, "readable": False,
              "error_code": exc.code, "error": str(exc)}
    if exc.kind == "unreachable":
        access["reachable"] = False
    elif exc.kind == "credentials":
        access["credentials_valid"] = False
    elif exc.kind == "denied":
        # Valid keys without the right to list: AccessDenied, not InvalidAccessKeyId.
        access["credentials_valid"] = True
    elif exc.kind == "missing":
        access["credentials_valid"] = True
        access["bucket_exists"] = False
    return access


def _object_lock(config):
    lock = (config or {}).get("ObjectLockConfiguration") or {}
    retention = ((lock.get("Rule") or {}).get("DefaultRetention")) or {}
    result = {"enabled": lock.get("ObjectLockEnabled") == "Enabled", "default_retention": None}
    if retention:
        unit = "days" if "Days" in retention else "years"
        result["default_retention"] = {"mode": retention.get("Mode"), "period": retention.get("Days", retention.get("Years")),
                                       "unit": unit}
    return result


def _lifecycle_rule(rule, root):
    """A lifecycle rule and whether it can touch the backupstore (Longhorn sets no object tags)."""
    rule_filter = rule.get("Filter") or {}
    conjunction = rule_filter.get("And") or {}
    prefix = rule_filter.get("Prefix", conjunction.get("Prefix", rule.get("Prefix"))) or ""
    needs_tags = bool(rule_filter.get("Tag") or conjunction.get("Tags"))
    overlaps = root.startswith(prefix) or prefix.startswith(root)
    actions = sorted(key for key in ("Expiration", "Transitions", "NoncurrentVersionExpiration", "NoncurrentVersionTransitions",
                                     "AbortIncompleteMultipartUpload") if rule.get(key))
    return {
        "id": rule.get("ID") or "",
        "status": rule.get("Status") or "",
        "prefix": prefix,
        "actions": actions,
        "applies_to_backupstore": rule.get("Status") == "Enabled" and overlaps and not needs_tags,
    }


def _aware(value):
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, str) and value:
        try:
            return bs.parse_go_time(value)
        except bs.BackupstoreFormatError:
            return None
    return None


def _server_time(response):
    """The server's clock from the Date header, so lock and backup ages do not depend on ours."""
    headers = ((response or {}).get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    value = headers.get("date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def findings(result):
    """Counts per fail_on category (``unreachable`` as a bool)."""
    integrity = result["integrity"]
    return {
        "unreachable": not result["access"]["readable"],
        "stale": len(result["stale"]),
        "missing": len(result["missing"]),
        "integrity": integrity["missing_blocks"] + integrity["corrupt_blocks"] + integrity["system_backup_failures"],
        "problems": len(result["problems"]),
    }


def failure_summary(result, fail_on, max_age=None):
    """A readable message naming every fail_on category that fired, or None when none did."""
    found = findings(result)
    parts = []
    if "unreachable" in fail_on and found["unreachable"]:
        parts.append("unreachable: %s" % (result["access"]["error"] or "the backupstore could not be listed"))
    if "stale" in fail_on and found["stale"]:
        parts.append("stale: %d volume(s) without a complete backup newer than %s (%s)"
                     % (found["stale"], format_duration(max_age or 0), _names(result["stale"])))
    if "missing" in fail_on and found["missing"]:
        parts.append("missing: %d expected volume(s) without a complete backup in the bucket (%s)"
                     % (found["missing"], _names(result["missing"])))
    if "integrity" in fail_on and found["integrity"]:
        integrity = result["integrity"]
        details = []
        if integrity["missing_blocks"]:
            details.append("%d missing block(s)" % integrity["missing_blocks"])
        if integrity["corrupt_blocks"]:
            details.append("%d corrupt block(s)" % integrity["corrupt_blocks"])
        if integrity["damaged_backup_count"]:
            details.append("%d damaged backup(s): %s" % (integrity["damaged_backup_count"], _names(
                "%s/%s" % (item["volume"], item["backup"]) for item in integrity["damaged_backups"])))
        if integrity["system_backup_failures"]:
            details.append("%d system backup(s) failing their checksum (%s)" % (integrity["system_backup_failures"], _names(
                "%s/%s: %s" % (item["version"], item["name"], item["checksum"]) for item in result["system_backups"]
                if item["checksum"] in ("mismatch", "missing_zip"))))
        parts.append("integrity: " + "; ".join(details))
    if "problems" in fail_on and found["problems"]:
        parts.append("problems: %d (%s)" % (found["problems"], _names(
            "%s%s" % (problem["kind"], " on " + problem["volume"] if problem["volume"] else "") for problem in result["problems"])))
    if not parts:
        return None
    return "Bucket check failed on %s" % "; ".join(parts)


def new_sample_seed():
    """A seed for integrity sampling when the user gave none (reported so a run can be repeated)."""
    return random.SystemRandom().randrange(1, 2 ** 31)
