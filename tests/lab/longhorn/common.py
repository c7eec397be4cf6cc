# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the backup-side Longhorn controllers: times, conditions, CR-only deletion."""

from __future__ import annotations

import datetime
import logging
import re
import threading

from ..context import LONGHORN_NAMESPACE
from .. import api_errors as errors

LOG = logging.getLogger("lab.longhorn")
GROUP = "longhorn.io"
MANAGER = "longhorn-manager"
LONGHORN_FINALIZER = "longhorn.io"
# ref §1.3 last bullet: datastore.IsLabelLonghornDeleteCustomResourceOnlyExisting (value "true").
DELETE_CR_ONLY_LABEL = "longhorn.io/delete-custom-resource-only"
LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
LABEL_VERSION = "longhorn.io/version"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(value=None):
    """metav1.Time / util.Now() text: RFC3339 UTC with seconds."""
    return (value or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """An RFC3339 time string as an aware datetime; None for empty or null."""
    if not text:
        return None
    text = str(text).strip().replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match and match.group(2):
        text = match.group(1) + match.group(2)[:7] + match.group(3)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def sync_requested(spec, status):
    """ref §1.1: sync when lastSyncedAt is zero or syncRequestedAt is later than it."""
    last = parse_time((status or {}).get("lastSyncedAt"))
    if last is None:
        return True
    requested = parse_time((spec or {}).get("syncRequestedAt"))
    return requested is not None and requested > last


class SyncMemory:
    """ref §1.1's sync rule, plus what second-resolution timestamps lose in a fast lab.

    metav1.Time keeps whole seconds, so a request written in the same second as the last
    sync compares equal. Longhorn's syncs take longer than that; the emulator's do not, so
    a same-second request counts when the object's spec changed since the last sync, and a
    request already served is not served twice.
    """

    def __init__(self):
        self._served = {}

    def needed(self, obj):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        last = parse_time(status.get("lastSyncedAt"))
        if last is None:
            return True
        requested = parse_time(spec.get("syncRequestedAt"))
        if requested is None:
            return False
        served = self._served.get(obj["metadata"]["uid"])
        if served == (obj["metadata"].get("generation"), spec.get("syncRequestedAt")):
            return False
        if requested > last:
            return True
        return requested == last and (served is None or served[0] != obj["metadata"].get("generation"))

    def synced(self, obj):
        """Record that the object, as read before the sync, has been served."""
        self._served[obj["metadata"]["uid"]] = (obj["metadata"].get("generation"), (obj.get("spec") or {}).get("syncRequestedAt"))


_DEFERRED = set()
_DEFERRED_LOCK = threading.Lock()


def request_sync(store, plural, name):
    """Write spec.syncRequestedAt = now, so the request is seen as new.

    metav1.Time keeps whole seconds: a request in the same second as the current value
    would write nothing and wake nobody. Such a request is written at the next second
    instead (never a time in the future), once per object.
    """
    obj = get(store, plural, name)
    if obj is None:
        return None
    moment = now().replace(microsecond=0)
    previous = parse_time((obj.get("spec") or {}).get("syncRequestedAt"))
    if previous is None or previous < moment:
        def _request(live):
            live.setdefault("spec", {})["syncRequestedAt"] = rfc3339(moment)
        return update_object(store, plural, name, _request)
    key = (id(store), plural, name)
    with _DEFERRED_LOCK:
        if key in _DEFERRED:
            return obj
        _DEFERRED.add(key)

    def _later():
        with _DEFERRED_LOCK:
            _DEFERRED.discard(key)
        if getattr(store, "stopped", False):
            return      # the lab stopped in the meantime: nobody is left to wake
        try:
            request_sync(store, plural, name)
        except errors.ApiError as exc:
            LOG.warning("deferred sync request of %s %s failed: %s", plural, name, exc.message)
        except Exception:  # pylint: disable=broad-except
            if not getattr(store, "stopped", False):
                raise
    delay = (previous + datetime.timedelta(seconds=1) - now()).total_seconds() + 0.01
    timer = threading.Timer(max(delay, 0.01), _later)
    timer.daemon = True
    timer.start()
    return obj


def parse_duration(text):
    """A Go/metav1.Duration string ("5m0s", "300s", "1h") in seconds; a bare number counts as seconds."""
    text = str(text or "0").strip()
    if re.match(r"^\d+(\.\d+)?$", text):
        return float(text)
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            raise ValueError("invalid duration %r" % text)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError("invalid duration %r" % text)
    return total


def format_duration(seconds):
    """time.Duration.String() for whole seconds: 300 -> "5m0s", 0 -> "0s"."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%dm%ds" % (hours, minutes, secs)
    if minutes:
        return "%dm%ds" % (minutes, secs)
    return "%ds" % secs


def set_condition(conditions, ctype, status, reason="", message=""):
    """types.SetCondition: lastTransitionTime moves only when the status changes."""
    conditions = [dict(c) for c in (conditions or [])]
    for condition in conditions:
        if condition.get("type") == ctype:
            if condition.get("status") != status:
                condition["status"] = status
                condition["lastTransitionTime"] = rfc3339()
            condition["reason"] = reason
            condition["message"] = message
            return conditions
    conditions.append({"type": ctype, "status": status, "reason": reason, "message": message,
                       "lastProbeTime": "", "lastTransitionTime": rfc3339()})
    return conditions


def rtype(store, plural):
    found = store.registry.by_plural(plural, GROUP)
    if found is None:
        raise errors.NotFound("customresourcedefinitions", "%s.%s" % (plural, GROUP), "apiextensions.k8s.io")
    return found


def store_missing(store, plural):
    """True while the CRD of ``plural`` is not served (during a wipe and reinstall)."""
    return store.registry.by_plural(plural, GROUP) is None


def get(store, plural, name):
    found = store.registry.by_plural(plural, GROUP)
    if found is None or not name:
        return None
    return store.try_get(found, LONGHORN_NAMESPACE, name)


def list_objects(store, plural, label_selector=None):
    found = store.registry.by_plural(plural, GROUP)
    if found is None:
        return []
    return store.list(found, LONGHORN_NAMESPACE, label_selector=label_selector)[0]


def update_status(store, plural, name, mutate):
    """Change status fields under the store lock (``mutate(status_dict)``); returns the object or None if gone."""
    def _apply(obj):
        status = obj.get("status") or {}
        obj["status"] = status
        mutate(status)
    try:
        return store.modify(rtype(store, plural), LONGHORN_NAMESPACE, name, _apply, subresource="status", user=MANAGER)
    except errors.NotFound:
        return None


def update_object(store, plural, name, mutate):
    try:
        return store.modify(rtype(store, plural), LONGHORN_NAMESPACE, name, mutate, user=MANAGER)
    except errors.NotFound:
        return None


def remove_finalizer(store, plural, name):
    def _drop(obj):
        finalizers = [f for f in (obj["metadata"].get("finalizers") or []) if f != LONGHORN_FINALIZER]
        obj["metadata"]["finalizers"] = finalizers
    return update_object(store, plural, name, _drop)


def delete_cr_only(store, plural, name):
    """Label ``longhorn.io/delete-custom-resource-only`` then delete: the remote data stays (ref §1.3)."""
    def _label(obj):
        labels = dict(obj["metadata"].get("labels") or {})
        labels[DELETE_CR_ONLY_LABEL] = "true"
        obj["metadata"]["labels"] = labels
    if update_object(store, plural, name, _label) is None:
        return
    try:
        store.delete(rtype(store, plural), LONGHORN_NAMESPACE, name, user=MANAGER)
    except errors.NotFound:
        pass


def has_cr_only_label(obj):
    return DELETE_CR_ONLY_LABEL in ((obj or {}).get("metadata", {}).get("labels") or {})


def target_available(target):
    """controller/utils.go isBackupTargetAvailable."""
    return bool(target) and not target["metadata"].get("deletionTimestamp") \
        and bool((target.get("spec") or {}).get("backupTargetURL")) and bool((target.get("status") or {}).get("available"))


def owner_reference(obj):
    return {"apiVersion": obj.get("apiVersion", "longhorn.io/v1beta2"), "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"]}
