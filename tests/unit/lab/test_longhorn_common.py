# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulator's shared helpers that need no cluster."""

from __future__ import annotations

import threading
import time

from tests.lab.longhorn import common


class _StoppedStore:
    """A client whose lab went away: every request fails, as a refused connection does."""

    class registry:  # pylint: disable=invalid-name
        @staticmethod
        def by_plural(plural, group=None):
            return (group, plural)

    def __init__(self):
        self.stopped = False
        self.requests = 0
        self.sync_requested_at = common.rfc3339(common.now().replace(microsecond=0))

    def try_get(self, rtype, namespace, name):
        self.requests += 1
        if self.stopped:
            raise ConnectionRefusedError("the lab is gone")
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"syncRequestedAt": self.sync_requested_at}}


def test_a_deferred_sync_request_is_dropped_once_the_client_stopped(monkeypatch):
    """A request in the same second is written a second later; if the lab stopped by then, quietly nothing."""
    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    store = _StoppedStore()
    assert common.request_sync(store, "backuptargets", "default") is not None
    assert store.requests == 1      # read, and deferred: syncRequestedAt is already this second
    store.stopped = True
    time.sleep(1.3)         # the deferred request is due within a second
    assert crashes == []
    assert store.requests == 1      # the deferred request never went out
