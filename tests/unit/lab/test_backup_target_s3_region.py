# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab S3 server refuses a request signed for another region, as MinIO with a configured region does."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.lab.s3 import LAB_REGION, S3Server

ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)


@pytest.fixture(scope="module")
def server():
    lab = S3Server(bucket="region-bucket", region="eu-central-1")
    lab.start()
    yield lab
    lab.stop()


def test_the_lab_region_is_explicit():
    assert S3Server().region == LAB_REGION == "us-east-1"


def test_the_configured_region_is_served(server):
    client = server.client(config=ONE_TRY)
    assert client.list_objects_v2(Bucket="region-bucket", Prefix="backupstore/")["KeyCount"] == 0


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_another_region_is_refused_with_minios_answer(server, region):
    client = server.client(config=ONE_TRY, region_name=region)
    for call in (lambda: client.list_objects_v2(Bucket="region-bucket"),
                 lambda: client.put_object(Bucket="region-bucket", Key="backupstore/x", Body=b"1")):
        with pytest.raises(ClientError) as caught:
            call()
        response = caught.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert response["Error"]["Code"] == "AuthorizationHeaderMalformed"
        assert response["Error"]["Message"] == \
            "The authorization header is malformed; the region is wrong; expecting 'eu-central-1'."
    # Nothing was written by the refused put.
    assert server.client(config=ONE_TRY).list_objects_v2(Bucket="region-bucket")["KeyCount"] == 0
