# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared Longhorn helpers in plugins/module_utils/_longhorn.py."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _longhorn as lh


@pytest.mark.parametrize("value, seconds", [
    (300, 300.0), ("300", 300.0), ("5m0s", 300.0), ("5m", 300.0), ("300s", 300.0), ("1h", 3600.0),
    ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5), (0, 0.0), ("0", 0.0), ("0s", 0.0), (" 10m ", 600.0),
])
def test_parse_duration(value, seconds):
    assert lh.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["five", "5x", "m5", "-5", "5m junk", True, -1])
def test_parse_duration_rejects(value):
    with pytest.raises(lh.InvalidValue):
        lh.parse_duration(value)


@pytest.mark.parametrize("seconds, text", [(300, "5m0s"), (0, "0s"), (3600, "1h0m0s"), (45, "45s"), (5400, "1h30m0s"), (0.5, "500ms")])
def test_format_duration_is_go_duration_string(seconds, text):
    assert lh.format_duration(seconds) == text
    assert lh.parse_duration(text) == seconds


def test_parse_backup_target_url_s3():
    info, warnings = lh.parse_backup_target_url("s3://backups@us-east-1/cluster-a/")
    assert (info["bucket"], info["region"], info["prefix"]) == ("backups", "us-east-1", "cluster-a")
    assert warnings == []


@pytest.mark.parametrize("url, words", [
    ("s3://backups/", "region"),
    ("s3://backups@/", "region after '@' is missing"),
    ("s3://@us-east-1/", "bucket is missing"),
    ("s3://backups@us-east-1", "end it with '/'"),
    ("s3://backups@us-east-1/path", "end the URL with '/'"),
    ("http://backups/", "scheme"),
    ("s3://backups@us-east-1/a,b/", "'$' or ','"),
    ("nfs://", "nfs://server:/export/path"),
])
def test_parse_backup_target_url_errors_name_the_value(url, words):
    with pytest.raises(lh.InvalidValue) as caught:
        lh.parse_backup_target_url(url)
    assert words in str(caught.value)
    assert url in str(caught.value)


@pytest.mark.parametrize("url, words", [
    ("s3://Backups@us-east-1/", "upper-case"),
    ("nfs://nas:/export/longhorn/", "ends with '/'"),
])
def test_parse_backup_target_url_warns_for_tolerated_forms(url, words):
    _info, warnings = lh.parse_backup_target_url(url)
    assert any(words in warning for warning in warnings)


def test_parse_backup_target_url_empty_means_unset():
    assert lh.parse_backup_target_url("") == ({"scheme": "", "url": ""}, [])


def test_cifs_may_use_dollar_shares():
    info, _warnings = lh.parse_backup_target_url("cifs://server/backup$")
    assert info["scheme"] == "cifs"


@pytest.mark.parametrize("version, legacy", [("v1.7.2", True), ("v1.6.0", True), ("v1.8.0", False), ("v1.10.2", False), ("1.7.0-rc1", True)])
def test_uses_backup_target_settings(version, legacy):
    assert lh.uses_backup_target_settings(version) is legacy


def test_version_tuple():
    assert lh.version_tuple("v1.10.2") == (1, 10, 2)
    assert lh.version_tuple("v1.9") == (1, 9, 0)
    assert lh.version_tuple("") == (0, 0, 0)


def test_backup_url_sorts_query_parameters():
    url = lh.backup_url("backup-1", "pvc-1", "s3://backups@us-east-1/")
    assert url == "s3://backups@us-east-1/?backup=backup-1&volume=pvc-1"
    assert lh.backup_url_parts(url) == ("backup-1", "pvc-1")


def test_backup_volume_cr_name_is_volume_plus_hash():
    name = lh.backup_volume_cr_name("pvc-1")
    assert name.startswith("pvc-1-") and len(name) == len("pvc-1-") + 8
    assert lh.backup_volume_cr_name("pvc-1", "other") != name


@pytest.mark.parametrize("text, expected", [
    ("2026-01-02T03:04:05Z", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
    ("2026-01-02T03:04:05.123456789Z", datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)),
    ("2026-01-02T05:04:05+02:00", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
    ("2026-01-02T03:04:05", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
    ("", None), (None, None), ("yesterday", None),
])
def test_parse_rfc3339(text, expected):
    assert lh.parse_rfc3339(text) == expected
