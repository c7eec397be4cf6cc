# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small helpers the integration tests share."""

from __future__ import annotations

import os
import time


def wait_until(predicate, what='condition', timeout=120):
    """Poll ``predicate`` every half second until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f'timed out after {timeout}s waiting for {what}')


def volume_file(lab, volume, name='data.txt'):
    """Text of a file on a lab volume (as setup_backups writes it), or None when it is not there."""
    path = os.path.join(lab.ctx.volume_data_dir(volume), name)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return handle.read()
