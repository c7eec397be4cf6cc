# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup targets: URL parsing and access to the store behind a BackupTarget CR.

ref §3.1 (URL forms), §3.2 (credential keys), §1.1 and §7 (the availability message).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import threading
import urllib.parse
from dataclasses import dataclass

from ..context import LONGHORN_NAMESPACE
from .backupstore import BackupStore

BACKUP_TARGETS = ("longhorn.io", "backuptargets")
DEFAULT_BACKUP_TARGET = "default"
DEFAULT_POLL_INTERVAL = "5m0s"

AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_ENDPOINTS = "AWS_ENDPOINTS"
AWS_IAM_ROLE_ARN = "AWS_IAM_ROLE_ARN"
# ref §1.1: every known credential key must be free of surrounding whitespace (validateCredentialSecret).
CREDENTIAL_KEYS = (
    "iam.amazonaws.com/role", AWS_IAM_ROLE_ARN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINTS, "AWS_CERT",
    "CIFS_USERNAME", "CIFS_PASSWORD", "AZBLOB_ACCOUNT_NAME", "AZBLOB_ACCOUNT_KEY", "AZBLOB_ENDPOINT", "AZBLOB_CERT",
    "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "VIRTUAL_HOSTED_STYLE",
)
# ref §1.1: types.BackupStoreRequireCredential.
SCHEMES_REQUIRING_CREDENTIAL = ("s3", "cifs", "azblob")
SUPPORTED_SCHEMES = ("s3", "nfs", "cifs", "azblob")


class TargetUnavailable(Exception):
    """The store cannot be reached; ``message`` is what Longhorn shows in the Unavailable condition."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class TargetClientError(TargetUnavailable):
    """Longhorn cannot even build a client (no secret): it logs and retries without touching status (ref §1.1)."""


@dataclass(frozen=True)
class TargetURL:
    url: str
    scheme: str
    bucket: str
    region: str
    path: str           # URL path without the leading "/", e.g. "" or "cluster-a/"

    @property
    def normalized(self):
        """The driver's URL (bs@HEAD:s3/s3.go GetURL), used in Backup.status.url (ref §4)."""
        text = "%s://%s" % (self.scheme, self.bucket)
        if self.region:
            text += "@" + self.region
        return text + "/" + self.path


def parse_backup_target_url(url, default_region=""):
    """Split an S3 target URL into bucket, region and path prefix (ref §3.1).

    Raises ValueError with Longhorn's wording for URLs the s3 driver refuses.
    """
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.scheme not in SUPPORTED_SCHEMES:
        raise ValueError("unsupported backup target URL %s" % url)
    if parsed.scheme != "s3":
        raise ValueError("the lab only emulates s3 backup targets, not %s" % parsed.scheme)
    # ref §3.1: bucket from the userinfo part, region from the host; without "@" the host is the bucket.
    netloc = parsed.netloc
    if "@" in netloc:
        bucket, _at, region = netloc.rpartition("@")
    else:
        bucket, region = netloc, default_region
    if not bucket or not parsed.path:
        raise ValueError("invalid URL. Must be either s3://bucket@region/path/, or s3://bucket/path")
    return TargetURL(url=url, scheme=parsed.scheme, bucket=bucket, region=region, path=parsed.path.lstrip("/"))


def backup_target_path(url):
    """What the duplicate-URL check compares (lm@v1.10.2:datastore/longhorn.go getBackupTargetPath, ref §1.1)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("s3", "azblob"):
        return parsed.scheme, url.lower()
    if parsed.scheme in ("nfs", "cifs"):
        return parsed.scheme, (parsed.netloc + parsed.path).rstrip("/").lower()
    raise ValueError("url %s with the unsupported protocol %s" % (url, parsed.scheme))


def secret_values(secret):
    """Decoded ``data`` merged with ``stringData`` of a Secret object."""
    values = {}
    for key, value in ((secret or {}).get("data") or {}).items():
        try:
            values[key] = base64.b64decode(value or "").decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            values[key] = ""
    for key, value in ((secret or {}).get("stringData") or {}).items():
        values[key] = value
    return values


def get_backup_target(store, name=DEFAULT_BACKUP_TARGET):
    rtype = store.registry.by_plural(BACKUP_TARGETS[1], BACKUP_TARGETS[0])
    return store.try_get(rtype, LONGHORN_NAMESPACE, name) if rtype is not None else None


def _scrub(text, secrets):
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "*****")
    return text


def describe_s3_error(operation, exc):
    """An S3 failure worded like aws-sdk-go-v2 errors that Longhorn prints (ref §7)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        meta = response.get("ResponseMetadata") or {}
        error = response.get("Error") or {}
        return "operation error S3: %s, https response error StatusCode: %s, RequestID: %s, HostID: %s, api error %s: %s" % (
            operation, meta.get("HTTPStatusCode", 0), meta.get("RequestId", ""), meta.get("HostId", ""),
            error.get("Code", "Unknown"), error.get("Message", ""))
    return "operation error S3: %s, exceeded maximum number of attempts, 5, https response error StatusCode: 0, RequestID: , HostID: , " \
           "request send failed, %s" % (operation, exc)


def _engine_failure(ctx, url, args, stderr):
    """How longhorn-manager wraps a failed engine-binary call (go-common-libs exec, engineapi)."""
    version = ctx.config.longhorn_version
    binary = "/engine-binaries/longhornio-longhorn-engine-%s/longhorn" % version
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "failed to execute: %s [%s %s], output , stderr time=\"%s\" level=error msg=\"Failed to list s3\" error=\"%s\"\n: exit status 1" % (
        binary, args, url, now, stderr)


def unavailable_message(ctx, url, detail):
    """ref §1.1/§7: the Unavailable condition message."""
    return "failed to list system backups in %s: error listing system backup in %s: %s" % (url, url, detail)


def credentials_for_target(ctx, target):
    """``(scheme, values)`` of the target's credential Secret; raises TargetClientError like newBackupTargetClient."""
    store = ctx.store
    spec = target.get("spec") or {}
    url = spec.get("backupTargetURL") or ""
    scheme = urllib.parse.urlsplit(url).scheme
    secret_name = spec.get("credentialSecret") or ""
    name = target["metadata"]["name"]
    engine = "longhornio/longhorn-engine:%s" % ctx.config.longhorn_version
    prefix = "failed to init backup target clients: failed to get %s backup target client on %s: " % (name, engine)
    if scheme not in SUPPORTED_SCHEMES:
        raise TargetClientError(prefix + "unsupported backup type %s" % scheme)
    if scheme not in SCHEMES_REQUIRING_CREDENTIAL:
        return scheme, {}
    if not secret_name:
        raise TargetClientError(prefix + "could not access %s without credential secret" % scheme)
    secret = store.try_get("secrets", LONGHORN_NAMESPACE, secret_name)
    if secret is None:
        raise TargetClientError(prefix + 'secrets "%s" not found' % secret_name)
    return scheme, secret_values(secret)


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()
_CLIENTS_MAX = 64


def _client(ctx, access_key, secret_key, endpoint, region):
    """boto3 clients are costly to build and thread-safe: one per credentials and endpoint."""
    key = (id(ctx.s3), endpoint, access_key, hashlib.sha256((secret_key or "").encode("utf-8")).hexdigest(), region)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
    if client is not None:
        return client
    kwargs = {"region_name": region} if region else {}
    client = ctx.s3.client(access_key=access_key, secret_key=secret_key, endpoint=endpoint, **kwargs)
    with _CLIENTS_LOCK:
        if len(_CLIENTS) >= _CLIENTS_MAX:
            _CLIENTS.clear()
        _CLIENTS[key] = client
    return client


def backupstore_for_target(ctx, target, probe=True):
    """A BackupStore for the BackupTarget object, checked like Longhorn checks availability (ref §1.1).

    Raises TargetUnavailable (message as in the Unavailable condition, never with secret values).
    """
    url = ((target.get("spec") or {}).get("backupTargetURL") or "")
    if not url:
        raise TargetUnavailable("backup target URL is empty")
    scheme, values = credentials_for_target(ctx, target)
    secrets = [values.get(AWS_ACCESS_KEY_ID, ""), values.get(AWS_SECRET_ACCESS_KEY, "")]
    try:
        parsed = parse_backup_target_url(url, default_region=ctx.config.region)
    except ValueError as exc:
        raise TargetUnavailable(unavailable_message(ctx, url, _engine_failure(ctx, url, "system-backup list", exc))) from None
    if scheme == "s3":
        # ref §3.2 / lm engineapi getBackupCredentialEnv: both keys are needed unless an IAM role is set.
        missing = [key for key in (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) if not values.get(key)]
        if missing and not values.get(AWS_IAM_ROLE_ARN):
            raise TargetUnavailable(unavailable_message(ctx, url, "could not backup to s3, missing [%s] in the secret" % " ".join(missing)))
    endpoint = values.get(AWS_ENDPOINTS) or None
    if endpoint is None:
        # Without AWS_ENDPOINTS the engine talks to AWS itself, which does not know lab keys (ref §7, #8954).
        detail = "operation error S3: ListObjectsV2, https response error StatusCode: 403, RequestID: , HostID: , api error " \
                 "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records."
        raise TargetUnavailable(unavailable_message(ctx, url, _engine_failure(ctx, url, "system-backup list", detail)))
    client = _client(ctx, values.get(AWS_ACCESS_KEY_ID), values.get(AWS_SECRET_ACCESS_KEY), endpoint, parsed.region)
    store = BackupStore(client, parsed.bucket, parsed.path)
    if probe:
        try:
            store.list_system_backups()
        except Exception as exc:  # pylint: disable=broad-except
            detail = _scrub(describe_s3_error("ListObjectsV2", exc), secrets)
            raise TargetUnavailable(unavailable_message(ctx, url, _engine_failure(ctx, url, "system-backup list", detail))) from None
    return store


def target_for_volume(store, volume):
    """The BackupTarget a volume backs up to (``spec.backupTargetName``, default ``default``)."""
    name = ((volume or {}).get("spec") or {}).get("backupTargetName") or DEFAULT_BACKUP_TARGET
    return get_backup_target(store, name)
