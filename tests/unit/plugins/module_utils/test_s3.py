# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""S3 access helpers: error classification with real botocore exceptions, retries, the client factory."""

from __future__ import annotations

import pytest
from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError,
                                 PartialCredentialsError, ReadTimeoutError)

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _s3

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client_error(code, status=400, message="", operation="ListObjectsV2"):
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@pytest.mark.parametrize("exc, kind, code", [
    (client_error("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."),
     "credentials", "InvalidAccessKeyId"),
    (client_error("SignatureDoesNotMatch", 403, "The request signature we calculated does not match"), "credentials",
     "SignatureDoesNotMatch"),
    (client_error("InvalidToken", 400), "credentials", "InvalidToken"),
    (client_error("ExpiredToken", 400), "credentials", "ExpiredToken"),
    (client_error("AccessDenied", 403, "Access Denied."), "denied", "AccessDenied"),
    (client_error("NoSuchBucket", 404), "missing", "NoSuchBucket"),
    (client_error("NoSuchKey", 404), "missing", "NoSuchKey"),
    (client_error("404", 404, "Not Found", "HeadBucket"), "missing", "404"),
    (client_error("NotImplemented", 501), "not_implemented", "NotImplemented"),
    (client_error("XNotImplemented", 501), "not_implemented", "XNotImplemented"),
    (client_error("ServiceUnavailable", 503, "Please retry."), "error", "ServiceUnavailable"),
    (EndpointConnectionError(endpoint_url="https://minio.invalid:9000"), "unreachable", "EndpointConnectionError"),
    (ConnectTimeoutError(endpoint_url="https://minio.invalid:9000"), "unreachable", "ConnectTimeoutError"),
    (NoCredentialsError(), "credentials", "NoCredentialsError"),
    (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "credentials", "PartialCredentialsError"),
])
def test_classify(exc, kind, code):
    error = _s3.classify(exc, "list objects in bucket b")
    assert (error.kind, error.code) == (kind, code)
    assert str(error).startswith("Failed to list objects in bucket b: ")


def test_classify_keeps_the_server_message_for_other_errors():
    error = _s3.classify(client_error("InternalError", 500, "We encountered an internal error."), "get object k")
    assert str(error) == "Failed to get object k: InternalError - We encountered an internal error."


def test_classify_passes_s3_errors_through():
    original = _s3.S3Error("x", code="c", kind="missing")
    assert _s3.classify(original, "anything") is original


def test_classify_without_a_code_uses_the_status():
    exc = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
    assert _s3.classify(exc, "head").kind == "missing"


def test_classified_messages_carry_no_credentials():
    # A server that echoed a secret in its message would be the store's fault; classify drops
    # the message for credential errors, and they are where a secret could appear.
    error = _s3.classify(client_error("SignatureDoesNotMatch", 403, "string to sign uses " + SECRET), "list")
    assert SECRET not in str(error)


@pytest.mark.parametrize("exc, expected", [
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("503", 503), True),
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    (client_error("AccessDenied", 403), False),
    (client_error("NoSuchKey", 404), False),
    (NoCredentialsError(), False),
])
def test_is_retryable(exc, expected):
    assert _s3.is_retryable(exc) is expected


def test_call_with_retry_backs_off_then_succeeds():
    attempts = []
    sleeps = []

    def flaky(value):
        attempts.append(value)
        if len(attempts) < 3:
            raise client_error("SlowDown", 503)
        return value * 2

    assert _s3.call_with_retry(flaky, 21, sleep=sleeps.append, delay=1.0, max_delay=1.5) == 42
    assert len(attempts) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 1.5


def test_call_with_retry_gives_up_and_never_retries_client_mistakes():
    sleeps = []
    calls = []

    def always(exc):
        calls.append(exc)
        raise exc

    with pytest.raises(ClientError):
        _s3.call_with_retry(always, client_error("ServiceUnavailable", 503), retries=2, sleep=sleeps.append)
    assert len(calls) == 3 and len(sleeps) == 2
    calls.clear()
    with pytest.raises(ClientError):
        _s3.call_with_retry(always, client_error("AccessDenied", 403), sleep=sleeps.append)
    assert len(calls) == 1


def test_s3_client_is_path_style_and_takes_extra_config(tmp_path):
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_text("not used before a request")
    params = {"endpoint_url": "https://minio.example.com:9000", "access_key": "AKIAEXAMPLE", "secret_key": SECRET,
              "session_token": None, "region": "eu-west-1", "validate_certs": True, "ca_bundle": str(ca_bundle)}
    client = _s3.s3_client(params, max_pool_connections=5,
                           extra_config={"request_checksum_calculation": "when_required"})
    config = client.meta.config
    assert client.meta.endpoint_url == "https://minio.example.com:9000"
    assert client.meta.region_name == "eu-west-1"
    assert config.s3["addressing_style"] == "path"
    assert config.max_pool_connections == 5
    assert config.request_checksum_calculation == "when_required"
    assert config.retries["total_max_attempts"] == 1  # retries are ours (call_with_retry), not botocore's
    assert SECRET not in repr(client)


def test_s3_client_leaves_out_settings_an_older_botocore_lacks(monkeypatch):
    # botocore < 1.36 has no checksum settings and its Config refuses unknown keywords (meta/ee-requirements.txt
    # allows botocore 1.34); it already computes checksums only where required.
    class OlderConfig:
        OPTION_DEFAULTS = {key: value for key, value in _s3.Config.OPTION_DEFAULTS.items() if "checksum" not in key}

        def __init__(self, **kwargs):
            unknown = set(kwargs) - set(self.OPTION_DEFAULTS) - {"s3", "retries", "signature_version"}
            if unknown:
                raise TypeError("Got unexpected keyword argument '%s'" % unknown.pop())
            self.kwargs = kwargs

    class Session:
        def client(self, service, **kwargs):
            return kwargs

    monkeypatch.setattr(_s3, "Config", OlderConfig)
    monkeypatch.setattr(_s3.boto3.session, "Session", Session)
    params = {"endpoint_url": "http://127.0.0.1:9000", "access_key": "a", "secret_key": "b", "region": "us-east-1"}
    client = _s3.s3_client(params, extra_config={"request_checksum_calculation": "when_required", "tcp_keepalive": True})
    assert client["config"].kwargs["tcp_keepalive"] is True
    assert "request_checksum_calculation" not in client["config"].kwargs


def test_s3_client_rejects_a_malformed_endpoint():
    with pytest.raises(ValueError, match="not a url"):
        _s3.s3_client({"endpoint_url": "not a url", "access_key": "a", "secret_key": "b"})


def test_ca_bundle_falls_back_to_aws_ca_bundle(monkeypatch, tmp_path):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    ca_bundle = tmp_path / "minio-ca.pem"
    ca_bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    params = {"endpoint_url": "https://minio.lan:9000", "bucket": "backups"}
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_bundle))
    validated = ArgumentSpecValidator(_s3.S3_CONNECTION_ARG_SPEC).validate(dict(params))
    assert not validated.error_messages, validated.error_messages
    assert validated.validated_parameters["ca_bundle"] == str(ca_bundle)
    # An explicit option wins over the environment.
    validated = ArgumentSpecValidator(_s3.S3_CONNECTION_ARG_SPEC).validate(dict(params, ca_bundle="/etc/ssl/own.pem"))
    assert validated.validated_parameters["ca_bundle"] == "/etc/ssl/own.pem"
    monkeypatch.delenv("AWS_CA_BUNDLE")
    assert ArgumentSpecValidator(_s3.S3_CONNECTION_ARG_SPEC).validate(dict(params)).validated_parameters["ca_bundle"] is None
