# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings shared by every test directory.

Loaded before pytest-ansible configures itself, so the collections path set
here is what it puts on the collection loader (see pytest.ini).
"""

from __future__ import annotations

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# `make` exports these; set them too when pytest is started by hand.
os.environ.setdefault('ANSIBLE_CONFIG', str(REPO_ROOT / 'ansible.cfg'))
os.environ.setdefault('ANSIBLE_COLLECTIONS_PATH', str(REPO_ROOT / '.collections'))

# The lab fixtures (lab, lab_session, lab_factory, target).
pytest_plugins = ['tests.lab.fixtures']


def pytest_terminal_summary(terminalreporter):
    """One line per suite (tests/unit, tests/integration) above pytest's closing line."""
    outcomes = ('passed', 'failed', 'error', 'skipped', 'xfailed', 'xpassed')
    by_suite = {}
    for outcome in outcomes:
        for report in terminalreporter.stats.get(outcome, []):
            parts = report.nodeid.split('/')
            suite = parts[1] if len(parts) > 2 and parts[0] == 'tests' else 'other'
            by_suite.setdefault(suite, dict.fromkeys(outcomes, 0))[outcome] += 1
    if not by_suite:
        return
    terminalreporter.write_sep('-', 'results by suite')
    for suite, counts in sorted(by_suite.items()):
        terminalreporter.write_line(f'{suite}: ' + ', '.join(f'{count} {outcome}' for outcome, count in counts.items() if count))
