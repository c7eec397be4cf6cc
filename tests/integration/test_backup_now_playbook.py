# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup_now playbook on the lab: every volume backed up, then a Ready system backup."""

from __future__ import annotations

import pytest

from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration


def test_backup_now(lab, run_playbook):
    volumes = setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))
    result = run_playbook('backup_now_lab.yml', extra_vars={'backup_now_system_backup_name': 'now'})
    assert result.rc == 0, str(result)
    backups = result.task_result('Back up every Longhorn volume')['backups']
    assert sorted(b['volume'] for b in backups) == sorted(volumes.values())
    assert {b['state'] for b in backups} == {'Completed'}
    assert result.task_result('Create a system backup')['result']['status']['state'] == 'Ready'
    assert lab.store.get('systembackups', 'longhorn-system', 'now')['spec']['volumeBackupPolicy'] == 'disabled'
    assert not result.mentions(lab.secret_key)
