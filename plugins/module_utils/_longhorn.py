# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Longhorn facts the modules share: API names, Go durations, backup target URLs."""

from __future__ import annotations

import datetime
import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

API_GROUP = "longhorn.io"
API_VERSION = "longhorn.io/v1beta2"
DEFAULT_NAMESPACE = "longhorn-system"
DEFAULT_BACKUP_TARGET = "default"
DRIVER_NAME = "driver.longhorn.io"
DELETE_CR_ONLY_LABEL = "longhorn.io/delete-custom-resource-only"
# Secret keys Longhorn reads for an s3 target (longhorn-manager types.go).
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINTS", "AWS_CERT", "VIRTUAL_HOSTED_STYLE",
                  "AWS_IAM_ROLE_ARN", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
SCHEMES_NEEDING_CREDENTIALS = ("s3", "cifs", "azblob")

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class InvalidValue(ValueError):
    """Bad user input; the message names the value."""


def parse_duration(value, option="poll interval"):
    """Seconds from an int/float (seconds), a numeric string (seconds) or a Go duration (``5m0s``, ``1h``, ``300s``).

    ``option`` names the value in the InvalidValue message.
    """
    if isinstance(value, bool):
        raise InvalidValue("%s must be seconds or a Go duration, not %r" % (option, value))
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidValue("%s must not be negative: %r; use seconds (300) or a Go duration (5m0s)" % (option, value))
        return float(value)
    text = str(value).strip()
    if re.match(r"^\d+(\.\d+)?$", text):
        return float(text)
    if text in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise InvalidValue("invalid %s %r: use seconds (300) or a Go duration (5m0s)" % (option, value))
    return total


def format_duration(seconds):
    """Go's Duration.String() for whole/fractional seconds: 300 -> ``5m0s``, 0 -> ``0s``, 3600 -> ``1h0m0s``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return ("%g" % millis) + "ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = ("%.9f" % secs).rstrip("0").rstrip(".")
    if hours:
        return "%dh%dm%ss" % (hours, minutes, secs_text)
    if minutes:
        return "%dm%ss" % (minutes, secs_text)
    return "%ss" % secs_text


def parse_backup_target_url(url):
    """Validate a backup target URL (ref: Longhorn docs set-backup-target, backupstore s3.go).

    Returns ``(info, warnings)``; raises InvalidValue for forms Longhorn rejects or that this
    collection refuses because they break silently (no region, no trailing slash).
    """
    if url in (None, ""):
        return {"scheme": "", "url": ""}, []
    warnings = []
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("s3", "nfs", "cifs", "azblob"):
        raise InvalidValue("unsupported backup target URL %r: the scheme must be s3://, nfs://, cifs:// or azblob://" % url)
    # Longhorn's checkBackupTargetURLFormat: ',' never, '$' only for cifs shares.
    if "," in parts.path or ("$" in parts.path and scheme != "cifs"):
        raise InvalidValue("invalid backup target URL %r: the path must not contain '$' or ','" % url)
    if url != url.lower():
        warnings.append("backup target URL %r has upper-case characters; Longhorn compares targets lower-cased" % url)
    info = {"scheme": scheme, "url": url, "query": dict(parse_qsl(parts.query))}
    if scheme == "s3":
        if "@" not in parts.netloc:
            raise InvalidValue("invalid s3 backup target URL %r: give the region as s3://<bucket>@<region>/ (use us-east-1 for MinIO)" % url)
        bucket, _sep, region = parts.netloc.partition("@")
        if not bucket:
            raise InvalidValue("invalid s3 backup target URL %r: the bucket is missing" % url)
        if not region:
            raise InvalidValue("invalid s3 backup target URL %r: the region after '@' is missing" % url)
        if not parts.path:
            raise InvalidValue("invalid s3 backup target URL %r: Longhorn rejects a URL without a path; end it with '/'" % url)
        if not parts.path.endswith("/"):
            raise InvalidValue("invalid s3 backup target URL %r: end the URL with '/' (e.g. %s/)" % (url, url))
        if not _BUCKET_NAME.match(bucket):
            warnings.append("bucket name %r does not follow S3 naming rules; MinIO may refuse it" % bucket)
        info.update(bucket=bucket, region=region, prefix=parts.path.strip("/"))
    elif scheme == "nfs":
        if not parts.netloc or not parts.path:
            raise InvalidValue("invalid nfs backup target URL %r: expected nfs://server:/export/path" % url)
        if parts.path.endswith("/"):
            warnings.append("nfs backup target URL %r ends with '/'; Longhorn tolerates it but compares targets without it" % url)
        info.update(server=parts.netloc.rstrip(":"), path=parts.path)
    elif scheme == "cifs":
        if not parts.netloc or not parts.path.strip("/"):
            raise InvalidValue("invalid cifs backup target URL %r: expected cifs://server/share" % url)
        info.update(server=parts.netloc, path=parts.path)
    elif scheme == "azblob":
        if "@" not in parts.netloc:
            raise InvalidValue("invalid azblob backup target URL %r: expected azblob://<container>@core.windows.net/[path/]" % url)
        container, _sep, endpoint = parts.netloc.partition("@")
        info.update(container=container, endpoint=endpoint, prefix=parts.path.strip("/"))
    return info, warnings


def backup_url(backup_name, volume_name, target_url):
    """EncodeBackupURL: the target URL plus sorted ``backup``/``volume`` query parameters (backupstore.go)."""
    parts = urlsplit(target_url)
    query = dict(parse_qsl(parts.query))
    query["volume"] = volume_name
    if backup_name:
        query["backup"] = backup_name
    return parts._replace(query=urlencode(sorted(query.items()))).geturl()


def backup_url_parts(url):
    """``(backup_name, volume_name)`` from a backup URL's query parameters."""
    query = dict(parse_qsl(urlsplit(url or "").query))
    return query.get("backup", ""), query.get("volume", "")


def backup_volume_cr_name(volume_name, target_name=DEFAULT_BACKUP_TARGET):
    """BackupVolume CR name from v1.8: ``<volume>-<first 8 hex of sha256("<volume>-<target>")>``."""
    return "%s-%s" % (volume_name, hashlib.sha256(("%s-%s" % (volume_name, target_name)).encode()).hexdigest()[:8])


def version_tuple(version):
    """``v1.10.2`` -> (1, 10, 2); unknown parts are 0."""
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(n) for n in (numbers + ["0", "0", "0"])[:3])


def uses_backup_target_settings(version):
    """Longhorn <= 1.7 keeps the backup target in Settings (ref §1.2)."""
    return version_tuple(version)[:2] <= (1, 7)


def parse_rfc3339(value):
    """An RFC 3339 time as Kubernetes and Go write it (``Z`` or an offset, any fraction digits) as an aware UTC
    datetime; None when empty or unreadable."""
    if not value:
        return None
    text = str(value).strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        # fromisoformat (Python < 3.11 on targets) takes exactly 3 or 6 fraction digits; Go writes up to 9.
        head, _dot, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = "%s.%s%s" % (head, (digits + "000000")[:6], rest)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)
