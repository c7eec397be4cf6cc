# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission of SystemBackup and SystemRestore in the emulator (ref §1.7, §1.8)."""

from __future__ import annotations

import pytest

from tests.lab import api_errors as errors
from tests.lab.longhorn import attachments
from tests.unit.lab.test_longhorn_volume_harness import (  # noqa: F401 pylint: disable=unused-import
    NS,
    env,
    lh,
    wait_for,
)


def _system_backup(env, name, policy=None):  # pylint: disable=redefined-outer-name
    spec = {} if policy is None else {"volumeBackupPolicy": policy}
    return env.store.create(lh(env.store, "systembackups"), {"metadata": {"name": name, "namespace": NS}, "spec": spec})


def _system_restore(env, name, system_backup):  # pylint: disable=redefined-outer-name
    return env.store.create(lh(env.store, "systemrestores"), {"metadata": {"name": name, "namespace": NS},
                                                              "spec": {"systemBackup": system_backup}})


def test_system_backup_is_refused_while_the_default_target_is_unavailable(env):  # pylint: disable=redefined-outer-name
    # A fresh install has BackupTarget default with an empty URL, not available (ref §1.1).
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        _system_backup(env, "sb-early")
    assert caught.value.code == 422
    assert 'admission webhook "validator.longhorn.io" denied the request: backup target default is not available' == caught.value.message
    assert env.get("systembackups", "sb-early") is None


def test_system_backup_is_refused_without_a_credential_secret_for_s3(env):  # pylint: disable=redefined-outer-name
    env.configure_target()

    def _no_secret(obj):
        obj["spec"]["credentialSecret"] = ""
    env.store.modify(lh(env.store, "backuptargets"), NS, "default", _no_secret)
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        _system_backup(env, "sb-nosecret")
    assert caught.value.code == 400
    assert caught.value.message.endswith("cannot access s3 without credential secret")


def test_system_backup_gets_policy_finalizer_and_owner(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    created = _system_backup(env, "sb-ok", policy="")
    assert created["spec"]["volumeBackupPolicy"] == "if-not-present"
    assert created["metadata"]["finalizers"] == ["longhorn.io"]
    target = env.get("backuptargets", "default")
    assert created["metadata"]["ownerReferences"] == [{"apiVersion": "longhorn.io/v1beta2", "kind": "BackupTarget", "name": "default",
                                                       "uid": target["metadata"]["uid"]}]
    assert _system_backup(env, "sb-always", policy="always")["spec"]["volumeBackupPolicy"] == "always"


def test_system_restore_is_refused_while_a_volume_is_attached(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    _system_backup(env, "sb-1", policy="disabled")
    env.create_volume("busy")
    env.create_volume("idle")
    env.wait_state("idle", "detached")
    attachments.add_ticket(env.store, "busy", "csi-busy", attachments.CSI_ATTACHER)
    env.wait_state("busy", "attached")
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        _system_restore(env, "sr-1", "sb-1")
    assert caught.value.code == 422
    assert "all volumes need to be detached before creating SystemRestore: busy (attached)" in caught.value.message
    assert "idle" not in caught.value.message
    attachments.remove_ticket(env.store, "busy", "csi-busy")
    env.wait_state("busy", "detached")
    assert _system_restore(env, "sr-1", "sb-1")["spec"]["systemBackup"] == "sb-1"


def test_system_restore_needs_an_existing_system_backup(env):  # pylint: disable=redefined-outer-name
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        _system_restore(env, "sr-x", "does-not-exist")
    assert 'systembackup.longhorn.io "does-not-exist" not found' in caught.value.message


def test_only_one_system_restore_in_progress(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.manager.stop()      # only admission matters from here; no controller may finish the first restore
    _system_backup(env, "sb-2", policy="disabled")
    rtype = lh(env.store, "systemrestores")
    env.store.create(rtype, {"metadata": {"name": "sr-running", "namespace": NS, "labels": {"longhorn.io/system-restore": "InProgress"}},
                             "spec": {"systemBackup": "sb-2"}})
    with pytest.raises(errors.ApiError, match='^admission webhook "') as caught:  # a webhook's denial, through the API server
        _system_restore(env, "sr-second", "sb-2")
    assert "found 1 SystemRestore in progress" in caught.value.message
