# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Logic of longhorn_backup_target: desired state, comparison, masking, sync freshness, the S3 check of a new target
and the rollback plan."""

from __future__ import annotations

import base64
import binascii
import datetime

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backupstore import backupstore_root
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    parse_rfc3339,
    format_duration,
    parse_duration,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import (
    BotoCoreError,
    ClientError,
    call_with_retry,
    classify,
    error_code,
)

MASK = "********"
MASK_CHANGED = "******** (changed)"

# ref §1.2: the <= v1.7 Settings that held the backup target.
SETTING_URL = "backup-target"
SETTING_SECRET = "backup-target-credential-secret"
SETTING_POLL = "backupstore-poll-interval"
LEGACY_SETTINGS = (SETTING_URL, SETTING_SECRET, SETTING_POLL)
VERSION_SETTING = "current-longhorn-version"

DEFAULT_RESOURCE_CONFIGMAP = "longhorn-default-resource"
DEFAULT_RESOURCE_KEY = "default-resource.yaml"

# Module option -> Secret key (ref §3.2).
CREDENTIAL_OPTIONS = (
    ("access_key", "AWS_ACCESS_KEY_ID"),
    ("secret_key", "AWS_SECRET_ACCESS_KEY"),
    ("endpoints", "AWS_ENDPOINTS"),
    ("cert", "AWS_CERT"),
    ("virtual_hosted_style", "VIRTUAL_HOSTED_STYLE"),
)


def secret_values(params):
    """``{SECRET_KEY: text}`` for the credential options given, trimmed (ref §1.1: Longhorn rejects surrounding whitespace)."""
    values = {}
    for option, key in CREDENTIAL_OPTIONS:
        value = params.get(option)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        values[key] = str(value).strip()
    return values


def decode_secret_data(secret):
    """A Secret's ``data`` decoded to text (undecodable values become ``None``, which never compares equal)."""
    decoded = {}
    for key, value in ((secret or {}).get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(value or "").decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded[key] = None
    return decoded


def encode_secret_data(values):
    return {key: base64.b64encode(value.encode("utf-8")).decode("ascii") for key, value in values.items()}


def changed_secret_keys(current_values, wanted_values):
    """Keys whose wanted value differs from the Secret's (missing keys count as changed)."""
    return sorted(key for key, value in wanted_values.items() if current_values.get(key) != value)


def masked_secret_view(name, present_keys, changed_keys=(), after=False):
    """The Secret as the diff shows it: key names only, values masked; changed keys marked on the after side."""
    if name is None:
        return None
    data = {}
    for key in sorted(present_keys):
        data[key] = MASK_CHANGED if after and key in changed_keys else MASK
    return {"name": name, "data": data}


def normalize_poll_interval(value):
    """Seconds (float) or None when the user leaves the interval alone; raises InvalidValue."""
    if value is None:
        return None
    return parse_duration(value)


def target_view(spec):
    """The managed fields of a BackupTarget spec, normalized: ``""`` for absent strings, seconds for the interval."""
    spec = spec or {}
    poll = spec.get("pollInterval")
    try:
        seconds = parse_duration(poll) if poll not in (None, "") else 0.0
    except ValueError:
        seconds = poll
    return {
        "backupTargetURL": spec.get("backupTargetURL") or "",
        "credentialSecret": spec.get("credentialSecret") or "",
        "pollInterval": seconds,
    }


def legacy_view(settings):
    """The three <= v1.7 Settings as a target view (``{name: value}`` in, same keys as ``target_view`` out)."""
    poll = settings.get(SETTING_POLL)
    try:
        seconds = parse_duration(poll) if poll not in (None, "") else 0.0
    except ValueError:
        seconds = poll
    return {
        "backupTargetURL": settings.get(SETTING_URL) or "",
        "credentialSecret": settings.get(SETTING_SECRET) or "",
        "pollInterval": seconds,
    }


def desired_view(current, url=None, credential_secret=None, poll_seconds=None):
    """``current`` with the fields the user set; ``None`` options leave a field alone (syncRequestedAt never counts)."""
    desired = dict(current)
    if url is not None:
        desired["backupTargetURL"] = url
    if credential_secret is not None:
        desired["credentialSecret"] = credential_secret
    if poll_seconds is not None:
        desired["pollInterval"] = poll_seconds
    return desired


def spec_patch(current, desired):
    """A merge patch for the BackupTarget spec fields that differ; the interval as a Go duration."""
    patch = {}
    for field, value in desired.items():
        if current.get(field) != value:
            patch[field] = format_duration(value) if field == "pollInterval" else value
    return patch


def settings_patch(current, desired):
    """``{setting name: value}`` for the <= v1.7 Settings that differ; the interval in whole seconds."""
    names = {"backupTargetURL": SETTING_URL, "credentialSecret": SETTING_SECRET, "pollInterval": SETTING_POLL}
    changes = {}
    for field, value in desired.items():
        if current.get(field) != value:
            changes[names[field]] = str(int(value)) if field == "pollInterval" else value
    return changes


def display_view(view):
    """A view for diff/results: the interval as Go prints it."""
    shown = dict(view)
    if isinstance(shown.get("pollInterval"), float):
        shown["pollInterval"] = format_duration(shown["pollInterval"])
    return shown


def configmap_backup_keys(configmap, yaml_load):
    """Backup-target keys present with a value in ``longhorn-default-resource`` (ref §1.2: they overwrite the CR)."""
    text = ((configmap or {}).get("data") or {}).get(DEFAULT_RESOURCE_KEY) or ""
    try:
        parsed = yaml_load(text) or {}
    except Exception:  # pylint: disable=broad-except
        return []
    if not isinstance(parsed, dict):
        return []
    return sorted(key for key in LEGACY_SETTINGS if key in parsed and parsed[key] not in (None, ""))


def parse_time(text):
    """An RFC 3339 time (``2026-01-02T03:04:05Z``, fractions allowed) as an aware datetime, or None."""
    return parse_rfc3339(text)


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unavailable_message(target):
    """The message of the ``Unavailable`` condition when it is True (ref §1.1), else ''."""
    for condition in ((target or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Unavailable" and str(condition.get("status")) == "True":
            return condition.get("message") or condition.get("reason") or "Unavailable"
    return ""


def is_ready(target, changed_at=None, previous_synced=None):
    """Available, synced at least once, and (after a change at ``changed_at``) synced again since.

    ``lastSyncedAt`` has whole seconds, so the change time is floored; ``previous_synced`` is the
    value seen before the change, which a fresh sync must move past.
    """
    status = (target or {}).get("status") or {}
    if status.get("available") is not True:
        return False
    last = parse_time(status.get("lastSyncedAt"))
    if last is None:
        return False
    if changed_at is None:
        return True
    floor = changed_at.replace(microsecond=0)
    if last < floor:
        return False
    previous = parse_time(previous_synced)
    return previous is None or last > previous


# --- the S3 check of a new target ---------------------------------------------------------------------

# Answers for a request signed for the wrong region: MinIO (and AWS SigV4) AuthorizationHeaderMalformed,
# MinIO's InvalidRegion, AWS's redirects to the bucket's region.
REGION_ERROR_CODES = ("AuthorizationHeaderMalformed", "InvalidRegion", "PermanentRedirect", "IllegalLocationConstraintException")


class TargetCheckError(Exception):
    """The new target failed the S3 check; ``kind`` is region, credentials, denied, missing_bucket, unreachable or error."""

    def __init__(self, message, kind, code=None):
        super().__init__(message)
        self.kind = kind
        self.code = code


def s3_addressing_style(values):
    """How Longhorn's S3 client addresses the store (ref §3.2, backupstore s3_service.go): VIRTUAL_HOSTED_STYLE
    true forces virtual-hosted, false forces path style; otherwise path style when AWS_ENDPOINTS is set."""
    forced = str(values.get("VIRTUAL_HOSTED_STYLE") or "").strip().lower()
    if forced == "true":
        return "virtual"
    if forced == "false" or values.get("AWS_ENDPOINTS"):
        return "path"
    return "auto"


def missing_s3_keys(values):
    """The key names Longhorn needs for an s3 target and the Secret lacks (ref §3.2: both unless AWS_IAM_ROLE_ARN)."""
    if values.get("AWS_IAM_ROLE_ARN"):
        return []
    return [key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not values.get(key)]


def _server_message(exc):
    if isinstance(exc, ClientError):
        return ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Message") or ""
    return ""


def check_error(exc, url, info, secret_name, endpoint, root):
    """A TargetCheckError for a failed listing; names the option and its value, never a credential."""
    code = error_code(exc)
    where = "endpoints %r" % endpoint if endpoint else "AWS S3 (no endpoints given)"
    keys = "the keys the credential Secret %r will hold" % secret_name
    if code in REGION_ERROR_CODES:
        detail = _server_message(exc)
        return TargetCheckError(
            "url %r: the store at %s refuses requests signed for region %r (%s%s). Put the store's region after '@' "
            "(s3://%s@<region>/%s); a MinIO without a configured region accepts us-east-1."
            % (url, where, info["region"], code, (": " + detail) if detail else "", info["bucket"], info["prefix"] + "/" if info["prefix"] else ""),
            "region", code)
    error = classify(exc, "list %s in bucket %s" % (root, info["bucket"]))
    if error.kind == "unreachable":
        hint = " (a TLS error: give the store's CA as cert)" if "SSL" in str(error.code) else ""
        return TargetCheckError(
            "endpoints %r: the store is unreachable from the controller (%s)%s. Check the scheme, host and port; "
            "when only the cluster can reach the store, set validate_target=false." % (endpoint or "(AWS S3)", error.code, hint),
            "unreachable", error.code)
    if code == "InvalidAccessKeyId":
        return TargetCheckError(
            "access_key: the store at %s does not know the access key ID of %s (InvalidAccessKeyId). Give an access key "
            "of this store (values are never shown)." % (where, keys), "credentials", code)
    if code == "SignatureDoesNotMatch":
        return TargetCheckError(
            "secret_key: the store at %s refuses the signature made with %s (SignatureDoesNotMatch): the secret key does "
            "not belong to the access key. Give the secret key of this access key (values are never shown)." % (where, keys),
            "credentials", code)
    if error.kind == "credentials":
        return TargetCheckError("access_key/secret_key: the store at %s refuses %s (%s)." % (where, keys, code), "credentials", code)
    if code == "AccessDenied":
        return TargetCheckError(
            "url %r: %s may not list %s in bucket %r at %s (AccessDenied). Longhorn needs s3:ListBucket, s3:GetObject, "
            "s3:PutObject and s3:DeleteObject there." % (url, keys, root, info["bucket"], where), "denied", code)
    if code in ("NoSuchBucket", "404", "NotFound"):
        return TargetCheckError(
            "url %r: bucket %r does not exist at %s (NoSuchBucket). Create it, or correct the bucket before '@' in url."
            % (url, info["bucket"], where), "missing_bucket", code)
    return TargetCheckError("url %r: listing %s in bucket %r at %s failed: %s" % (url, root, info["bucket"], where, error),
                            "error", error.code)


def check_s3_target(client, url, info, secret_name, endpoint, retries=2, sleep=None):
    """One LIST of ``<prefix>/backupstore/`` with the client Longhorn's credentials make; raises TargetCheckError.

    Returns the listed prefix. An empty listing is fine: a new target has no backups yet.
    """
    root = backupstore_root(info.get("prefix"))
    kwargs = {"retries": retries}
    if sleep is not None:
        kwargs["sleep"] = sleep
    try:
        call_with_retry(client.list_objects_v2, Bucket=info["bucket"], Prefix=root, Delimiter="/", MaxKeys=1, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise check_error(exc, url, info, secret_name, endpoint, root) from None
    return root


def scrub(text, values):
    """``text`` without any of the credential ``values`` (belt and braces for server messages)."""
    for value in values:
        if value and len(value) >= 4:
            text = text.replace(value, "********")
    return text


def secret_restore_patch(previous_data, written_keys):
    """A merge patch that gives the Secret's ``data`` back its previous (base64) values for ``written_keys``:
    keys that were there get their old value, keys this run added are removed (``None``)."""
    previous_data = previous_data or {}
    return {"data": {key: previous_data.get(key) for key in sorted(written_keys)}}


def spec_restore_patch(previous_spec, fields):
    """A merge patch that gives the BackupTarget spec ``fields`` their previous raw values (``None`` removes a field
    that was not set)."""
    previous_spec = previous_spec or {}
    return {field: previous_spec.get(field) for field in fields}
