# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""S3 access for MinIO-style stores: connection options named as amazon.aws names them,
error classification, and retries with jittered backoff."""

from __future__ import annotations

import random
import time
import traceback

from ansible.module_utils.basic import env_fallback

try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class ClientError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses work when botocore is missing."""

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses work when botocore is missing."""

    class EndpointConnectionError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses work when botocore is missing."""


# Options shared by the S3 modules; names and aliases follow amazon.aws.
S3_CONNECTION_ARG_SPEC = dict(
    endpoint_url=dict(type="str", required=True, aliases=["aws_endpoint_url", "s3_url"]),
    access_key=dict(type="str", aliases=["aws_access_key_id", "aws_access_key"], no_log=True),
    secret_key=dict(type="str", aliases=["aws_secret_access_key", "aws_secret_key"], no_log=True),
    session_token=dict(type="str", aliases=["aws_session_token"], no_log=True),
    region=dict(type="str", default="us-east-1", aliases=["aws_region"]),
    validate_certs=dict(type="bool", default=True),
    # As amazon.aws: the environment's AWS_CA_BUNDLE when the option is not set (botocore itself ignores it
    # once verify= is passed, which s3_client always does).
    ca_bundle=dict(type="path", aliases=["aws_ca_bundle"], fallback=(env_fallback, ["AWS_CA_BUNDLE"])),
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
)

# Codes that mean "your credentials are wrong", told apart because the fix differs.
CREDENTIAL_ERROR_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken")
# S3 drop-ins (MinIO, Ceph) answer these for APIs they do not implement.
NOT_IMPLEMENTED_CODES = ("NotImplemented", "XNotImplemented", "501", "MethodNotAllowed")
# botocore exceptions raised before any request is sent because credentials are missing.
NO_CREDENTIALS_ERRORS = ("NoCredentialsError", "PartialCredentialsError")
RETRYABLE_CODES = ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                   "InternalError", "ServiceUnavailable", "500", "502", "503", "504")


class S3Error(Exception):
    """A classified S3 failure. ``kind`` is one of unreachable, credentials, missing, not_implemented, denied, error."""

    def __init__(self, message, code=None, kind="error"):
        super().__init__(message)
        self.code = code
        self.kind = kind


def error_code(exc):
    if isinstance(exc, ClientError):
        response = getattr(exc, "response", None) or {}
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return str(status) if status else None
    return None


def classify(exc, action):
    """Turn a botocore error into an S3Error whose message names the action but never a credential."""
    if isinstance(exc, S3Error):
        return exc
    code = error_code(exc)
    if type(exc).__name__ in NO_CREDENTIALS_ERRORS:
        # botocore found no (or half of the) credentials: a configuration problem, not a network one.
        return S3Error("Failed to %s: %s" % (action, type(exc).__name__), code=type(exc).__name__, kind="credentials")
    if isinstance(exc, EndpointConnectionError) or (isinstance(exc, BotoCoreError) and code is None):
        return S3Error("Failed to %s: endpoint unreachable (%s)" % (action, type(exc).__name__), code=type(exc).__name__, kind="unreachable")
    if code in CREDENTIAL_ERROR_CODES:
        kind = "denied" if code == "AccessDenied" else "credentials"
        return S3Error("Failed to %s: %s" % (action, code), code=code, kind=kind)
    if code in ("NoSuchBucket", "NoSuchKey", "404", "NotFound"):
        return S3Error("Failed to %s: %s" % (action, code), code=code, kind="missing")
    if code in NOT_IMPLEMENTED_CODES:
        return S3Error("Failed to %s: not supported by this S3 store (%s)" % (action, code), code=code, kind="not_implemented")
    message = ""
    if isinstance(exc, ClientError):
        message = ((exc.response or {}).get("Error") or {}).get("Message") or ""
    return S3Error("Failed to %s: %s%s" % (action, code or type(exc).__name__, (" - " + message) if message else ""), code=code)


def is_retryable(exc):
    if isinstance(exc, (EndpointConnectionError,)):
        return True
    if isinstance(exc, BotoCoreError) and not isinstance(exc, ClientError):
        # Connection resets, read timeouts and the like.
        return type(exc).__name__ in ("ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError", "ConnectionError",
                                      "EndpointConnectionError", "ResponseStreamingError")
    return error_code(exc) in RETRYABLE_CODES


def call_with_retry(func, *args, retries=4, delay=0.2, max_delay=3.0, sleep=time.sleep, **kwargs):
    """Call ``func`` with jittered exponential backoff on throttling, 5xx and connection errors."""
    attempt = 0
    while True:
        try:
            return func(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            if attempt >= retries or not is_retryable(exc):
                raise
            sleep(random.uniform(0, min(max_delay, delay * (2 ** attempt))))
            attempt += 1


def list_object_pages(client, bucket, prefix, action, retries=4, sleep=time.sleep):
    """Every page of a paginated ListObjectsV2 under ``prefix``, each call retried and classified.

    A page that says it is truncated but gives no continuation token would end the listing early and hide
    objects, so it is an error (fail closed), never the end of the listing.
    """
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    while True:
        try:
            page = call_with_retry(client.list_objects_v2, retries=retries, sleep=sleep, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, action) from None
        yield page
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")
        if not token:
            raise S3Error("Failed to %s: the listing was cut short (IsTruncated without NextContinuationToken); "
                          "objects after %r are unknown" % (action, (page.get("Contents") or [{}])[-1].get("Key")),
                          code="TruncatedListing")
        kwargs["ContinuationToken"] = token


def s3_client(params, max_pool_connections=16, connect_timeout=5, read_timeout=30, extra_config=None, addressing_style="path"):
    """A path-style S3 client (MinIO default) from module params; botocore retries are off, we retry ourselves.

    ``addressing_style`` (``path``, ``virtual`` or ``auto``) is for callers that must address the store as
    Longhorn will (its ``VIRTUAL_HOSTED_STYLE`` key).

    ``extra_config`` adds botocore Config settings, e.g. ``request_checksum_calculation``. Settings that the
    installed botocore does not know are left out: the checksum settings came with botocore 1.36, and older
    versions already behave as ``when_required`` (checksums only where an operation requires one).
    """
    extra_config = {key: value for key, value in (extra_config or {}).items() if key in Config.OPTION_DEFAULTS}
    config = Config(
        s3={"addressing_style": addressing_style},
        signature_version="s3v4",
        # total_max_attempts counts the first try; max_attempts=1 would still allow one botocore retry.
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **extra_config
    )
    verify = params.get("validate_certs", True)
    if verify and params.get("ca_bundle"):
        verify = params["ca_bundle"]
    session = boto3.session.Session()
    try:
        return session.client(
            "s3",
            endpoint_url=params["endpoint_url"],
            aws_access_key_id=params.get("access_key"),
            aws_secret_access_key=params.get("secret_key"),
            aws_session_token=params.get("session_token"),
            region_name=params.get("region") or "us-east-1",
            verify=verify,
            config=config,
        )
    except ValueError as exc:
        # botocore says "Invalid endpoint: x" or "Provided region_name 'x' doesn't match": name the option too.
        if "region" in str(exc):
            raise ValueError("region %r is not a region name; give one such as us-east-1 (%s)" % (params.get("region"), exc)) from None
        if "endpoint" in str(exc).lower():
            raise ValueError("endpoint_url %r is not a URL; give one such as http://minio:9000 or https://s3.example.org (%s)"
                             % (params["endpoint_url"], exc)) from None
        raise


def botocore_version():
    return getattr(botocore, "__version__", "unknown") if HAS_BOTO3 else None
