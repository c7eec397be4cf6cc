# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission of Longhorn Volumes in the emulator (ref §1 general conventions, §1.5)."""

from __future__ import annotations

import pytest

from tests.lab import api_errors as errors
from tests.lab.longhorn import volumedata
from tests.lab.longhorn.backupstore import encode_backup_url
from tests.unit.lab.test_longhorn_volume_harness import (  # noqa: F401 pylint: disable=unused-import
    MIB,
    NS,
    env,
    lh,
)


def _refused(env, name, **spec):  # pylint: disable=redefined-outer-name
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        env.create_volume(name, **spec)
    assert env.volume(name) is None
    return caught.value


def test_name_longer_than_40_characters_is_refused_not_renamed(env):  # pylint: disable=redefined-outer-name
    name = "pvc-" + "a" * 37
    error = _refused(env, name)
    assert error.code == 422
    assert error.reason == "Invalid"
    assert 'admission webhook "validator.longhorn.io" denied the request' in error.message
    assert "volume name is too long %s, must be less than 40 characters" % name in error.message
    assert env.store.list(lh(env.store, "volumes"), NS)[0] == []
    # 40 characters are fine.
    assert env.create_volume("pvc-" + "a" * 36)["metadata"]["name"] == "pvc-" + "a" * 36


def test_name_with_invalid_characters_is_refused(env):  # pylint: disable=redefined-outer-name
    # A one-character name passes the API server's own name check but not Longhorn's ([a-z0-9][a-z0-9_.-]+).
    error = _refused(env, "a")
    assert "invalid name a" in error.message


def test_defaults_of_the_mutator(env):  # pylint: disable=redefined-outer-name
    volume = env.create_volume("defaults", size=3 * MIB, numberOfReplicas=0)
    spec = volume["spec"]
    # Sizes round up to 2 MiB; 0 replicas take the default-replica-count setting.
    assert spec["size"] == str(4 * MIB)
    assert spec["numberOfReplicas"] == 3
    assert spec["dataEngine"] == "v1"
    assert spec["accessMode"] == "rwo"
    assert spec["backupTargetName"] == "default"
    assert spec["backupCompressionMethod"] == "lz4"
    assert spec["backupBlockSize"] == str(2 * MIB)
    assert spec["image"] == "longhornio/longhorn-engine:v1.10.2"
    assert volume["metadata"]["finalizers"] == ["longhorn.io"]
    assert volume["metadata"]["labels"]["backup-target"] == "default"


def test_frontend_is_not_defaulted_on_the_cr_path(env):  # pylint: disable=redefined-outer-name
    error = _refused(env, "no-frontend", frontend="")
    assert "invalid volume frontend specified:  for data engine v1" in error.message


def test_default_compression_follows_the_setting_and_is_immutable(env):  # pylint: disable=redefined-outer-name
    def _gzip(obj):
        obj["value"] = "gzip"
    env.store.modify(lh(env.store, "settings"), NS, "backup-compression-method", _gzip)
    assert env.create_volume("gz")["spec"]["backupCompressionMethod"] == "gzip"

    def _change(obj):
        obj["spec"]["backupCompressionMethod"] = "none"
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        env.store.modify(lh(env.store, "volumes"), NS, "gz", _change)
    assert "changing backup compression method for volume gz is not supported" in caught.value.message


def test_backup_block_size_is_immutable_and_checked_against_the_size(env):  # pylint: disable=redefined-outer-name
    env.create_volume("blocks", size=32 * MIB)

    def _change(obj):
        obj["spec"]["backupBlockSize"] = str(16 * MIB)
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        env.store.modify(lh(env.store, "volumes"), NS, "blocks", _change)
    assert "changing backup block size for volume blocks is not supported" in caught.value.message
    error = _refused(env, "odd-size", size=6 * MIB, backupBlockSize=str(16 * MIB))
    assert "must be an integer multiple of the backup block size" in error.message


def test_shrinking_is_refused(env):  # pylint: disable=redefined-outer-name
    env.create_volume("shrink", size=8 * MIB)

    def _smaller(obj):
        obj["spec"]["size"] = str(4 * MIB)
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        env.store.modify(lh(env.store, "volumes"), NS, "shrink", _smaller)
    assert "shrinking volume shrink size" in caught.value.message


def test_from_backup_of_a_missing_backup_cr_is_refused(env):  # pylint: disable=redefined-outer-name
    url = encode_backup_url("backup-ffffffffffffffff", "gone", env.target_url)
    error = _refused(env, "orphan", fromBackup=url)
    assert 'admission webhook "mutator.longhorn.io" denied the request' in error.message
    assert 'backup.longhorn.io "backup-ffffffffffffffff" not found' in error.message
    assert error.code == 422
    # With an access mode the other branch of the mutator refuses the same way.
    error = _refused(env, "orphan", fromBackup=url, accessMode="rwo")
    assert 'cannot get backup backup-ffffffffffffffff: backup.longhorn.io "backup-ffffffffffffffff" not found' in error.message


def test_from_backup_takes_size_access_mode_and_target_from_the_backup(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.configure_target()
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_bytes(b"x" * 1000)
    env.write_backup("src-vol", "backup-1111111111111111", volumedata.image_from_dir(str(source), 16 * MIB), 16 * MIB,
                     labels={"longhorn.io/volume-access-mode": "rwx"})
    env.sync_backup_crs("src-vol", "backup-1111111111111111")
    url = encode_backup_url("backup-1111111111111111", "src-vol", env.target_url)
    volume = env.create_volume("from-bk", size=2 * MIB, fromBackup=url, backupTargetName="elsewhere")
    assert volume["spec"]["size"] == str(16 * MIB)
    assert volume["spec"]["accessMode"] == "rwx"
    assert volume["spec"]["backupTargetName"] == "default"
    assert volume["metadata"]["labels"]["backup-volume"] == "src-vol"
    # An explicit access mode wins over the label.
    assert env.create_volume("from-bk-rwo", fromBackup=url, accessMode="rwo")["spec"]["accessMode"] == "rwo"


def test_unknown_backup_target_is_refused(env):  # pylint: disable=redefined-outer-name
    error = _refused(env, "bt", backupTargetName="nowhere")
    assert 'failed to get backup target nowhere: backuptarget.longhorn.io "nowhere" not found' in error.message
