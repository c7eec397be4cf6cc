# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The full drill of `make demo`: the gate refuses then passes, the wiped cluster comes back under the same PVC
names, and the data verifies against the baselines; no lab process is left behind."""

from __future__ import annotations

import io
import json

import pytest

from demo import drill

pytestmark = pytest.mark.integration


def test_drill(tmp_path):
    """The system-backup method, on a lab bootstrapped from scratch as `make demo` does; the volumes method
    runs in test_installed_collection, from the installed tarball with the oldest versions claimed."""
    story = io.StringIO()
    run = drill.Drill(tmp_path, 'system_backup', drill.Story(out=story))
    try:
        result = run.run()
        s3_process = run.lab.s3._proc  # pylint: disable=protected-access
        processes = dict(run.lab.cluster._processes)  # pylint: disable=protected-access
        version = run.lab.cluster.request('/version')[1]['gitVersion']
    finally:
        run.stop()
    text = story.getvalue()
    # kube-apiserver, controller-manager, scheduler and the node agent built from source, on kine.
    assert version.startswith('v1.36.'), version
    assert set(processes) == {'kine', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'lab-node-agent'}
    assert result['restore']['method'] == 'system_backup'
    assert result['restore']['failures'] == [] and len(result['restore']['volumes']) == 3
    assert sorted(result['claims']) == ['monitoring/metrics', 'shop/data-db-0', 'shop/uploads']
    assert result['verify']['summary'].startswith('Restore verified') and ' 0 failure(s)' in result['verify']['summary'], result['verify']
    assert 'refused:' in text and 'no backup' in text, text
    assert 'baseline test_data rows = 1000' in text, text
    # The lab is gone: every component and its S3 child process were stopped and reaped.
    assert all(process.poll() is not None for process in processes.values())
    assert s3_process.poll() is not None
    # Nothing the drill printed or logged carries the secret key.
    assert run.lab.secret_key not in text
    for log in (tmp_path / 'logs').iterdir():
        assert run.lab.secret_key not in log.read_text(encoding='utf-8'), log.name
    json.loads((tmp_path / 'restore-plan.json').read_text(encoding='utf-8'))
