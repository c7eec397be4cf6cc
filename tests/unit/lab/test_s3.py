# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab S3 server: authentication like MinIO, and the faults seen by a boto3 client."""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.lab.s3 import S3Server

# One attempt and short timeouts, so a fault shows at once.
ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)


@pytest.fixture(scope="module")
def server():
    lab = S3Server(bucket="lab-bucket")
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(autouse=True)
def no_faults(server):
    yield
    server.faults.clear()


@pytest.fixture
def s3(server):
    return server.client(config=ONE_TRY)


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], caught.value.response["Error"]["Code"]


def test_lab_credentials_work(server, s3):
    assert server.endpoint.startswith("http://127.0.0.1:")
    s3.put_object(Bucket="lab-bucket", Key="backupstore/x.cfg", Body=b"{}")
    assert s3.get_object(Bucket="lab-bucket", Key="backupstore/x.cfg")["Body"].read() == b"{}"
    listing = s3.list_objects_v2(Bucket="lab-bucket", Prefix="backupstore/", Delimiter="/")
    assert [item["Key"] for item in listing["Contents"]] == ["backupstore/x.cfg"]


def test_wrong_access_key_is_refused(server):
    wrong = server.client(access_key="AKIAWRONGWRONGWRONG0", config=ONE_TRY)
    assert error_of(lambda: wrong.list_objects_v2(Bucket="lab-bucket")) == (403, "InvalidAccessKeyId")
    assert error_of(lambda: wrong.put_object(Bucket="lab-bucket", Key="k", Body=b"1")) == (403, "InvalidAccessKeyId")


def test_wrong_secret_key_is_refused(server):
    wrong = server.client(secret_key="x" * 40, config=ONE_TRY)
    assert error_of(lambda: wrong.list_objects_v2(Bucket="lab-bucket")) == (403, "SignatureDoesNotMatch")
    assert error_of(lambda: wrong.delete_object(Bucket="lab-bucket", Key="k")) == (403, "SignatureDoesNotMatch")


def test_anonymous_and_moto_admin_requests_are_refused(server, s3):
    s3.put_object(Bucket="lab-bucket", Key="keep", Body=b"1")
    for request in (urllib.request.Request(server.endpoint + "/lab-bucket/keep"),
                    urllib.request.Request(server.endpoint + "/moto-api/reset", method="POST")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)  # nosec B310 - local lab server
        assert caught.value.code == 403
    assert s3.get_object(Bucket="lab-bucket", Key="keep")["Body"].read() == b"1"


def test_credentials_stay_out_of_repr(server):
    assert server.access_key and server.secret_key
    assert server.secret_key not in repr(server) and server.access_key not in repr(server)


def test_slow_fault_delays_requests(server, s3):
    server.faults.set("slow", delay=0.4)
    started = time.monotonic()
    s3.list_objects_v2(Bucket="lab-bucket")
    assert time.monotonic() - started >= 0.4
    server.faults.clear()
    started = time.monotonic()
    s3.list_objects_v2(Bucket="lab-bucket")
    assert time.monotonic() - started < 0.4


def test_a_link_is_shared_by_concurrent_gets(server, s3):
    s3.put_object(Bucket="lab-bucket", Key="link/object", Body=b"x" * 1_000_000)
    server.set_link(5_000_000)  # 5 MB/s: each 1 MB GET crosses the link in 0.2 s, one after another
    try:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            sizes = list(pool.map(lambda _n: len(s3.get_object(Bucket="lab-bucket", Key="link/object")["Body"].read()), range(3)))
        elapsed = time.monotonic() - started
    finally:
        server.set_link(0)
    assert sizes == [1_000_000] * 3
    assert elapsed >= 0.6, "three transfers shared the link: %.2fs" % elapsed
    started = time.monotonic()
    s3.get_object(Bucket="lab-bucket", Key="link/object")["Body"].read()
    assert time.monotonic() - started < 0.2
    with pytest.raises(ValueError, match="bandwidth of 0"):
        server.set_link(-1)


@pytest.mark.parametrize("status, code", [(503, "ServiceUnavailable"), (500, "InternalError")])
def test_error_fault_answers_s3_errors(server, s3, status, code):
    server.faults.set("error", status=status)
    assert error_of(lambda: s3.get_object(Bucket="lab-bucket", Key="any")) == (status, code)


def test_error_fault_restricted_to_paths_and_counted(server, s3):
    s3.put_object(Bucket="lab-bucket", Key="backupstore/volumes/a/volume.cfg", Body=b"1")
    s3.put_object(Bucket="lab-bucket", Key="other", Body=b"2")
    server.faults.set("error", status=500, paths="backupstore/volumes/*", count=1, code="SlowDown")

    assert s3.get_object(Bucket="lab-bucket", Key="other")["Body"].read() == b"2"
    assert error_of(lambda: s3.get_object(Bucket="lab-bucket", Key="backupstore/volumes/a/volume.cfg")) == (500, "SlowDown")
    # The single counted failure is used up.
    assert s3.get_object(Bucket="lab-bucket", Key="backupstore/volumes/a/volume.cfg")["Body"].read() == b"1"


def test_error_fault_matches_listing_prefix(server, s3):
    server.faults.set("error", status=503, paths="system-backups")
    assert error_of(lambda: s3.list_objects_v2(Bucket="lab-bucket", Prefix="backupstore/system-backups/")) == \
        (503, "ServiceUnavailable")
    s3.list_objects_v2(Bucket="lab-bucket", Prefix="backupstore/volumes/")


def test_down_refuses_connections_until_cleared(server, s3):
    endpoint = server.endpoint
    server.faults.set("down")
    with pytest.raises(EndpointConnectionError):
        s3.list_objects_v2(Bucket="lab-bucket")
    server.faults.clear()
    assert server.endpoint == endpoint
    assert s3.list_objects_v2(Bucket="lab-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_down_for_some_paths_cuts_those_connections(server, s3):
    s3.put_object(Bucket="lab-bucket", Key="blocks/ab/cd/x.blk", Body=b"1")
    server.faults.set("down", paths="blocks/")
    with pytest.raises(ConnectionClosedError):
        s3.get_object(Bucket="lab-bucket", Key="blocks/ab/cd/x.blk")
    assert s3.list_objects_v2(Bucket="lab-bucket", Prefix="volumes/")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_invalid_faults_are_refused(server):
    with pytest.raises(ValueError):
        server.faults.set("flaky")
    with pytest.raises(ValueError):
        server.faults.set("slow")
    with pytest.raises(ValueError):
        server.faults.set("error", status=200)
    assert server.faults.current == {"mode": "ok"}


def test_backup_target_url(server):
    assert server.backup_target_url() == "s3://lab-bucket@us-east-1/"
    assert server.backup_target_url("/cluster-a/") == "s3://lab-bucket@us-east-1/cluster-a/"


def test_object_lock_bucket():
    with S3Server(bucket="locked-bucket", object_lock=True) as locked:
        s3 = locked.client(config=ONE_TRY)
        assert s3.get_object_lock_configuration(Bucket="locked-bucket")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
        assert s3.get_bucket_versioning(Bucket="locked-bucket")["Status"] == "Enabled"
    assert not locked.running
