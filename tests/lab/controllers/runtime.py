# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small controller runtime: store events feed per-controller work queues.

Each controller names the resource types it watches and maps events to keys;
``reconcile(key)`` is level-triggered and may ask to be called again later.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time

from .. import api_errors as errors

LOG = logging.getLogger("lab.controllers")


class Controller:
    """Subclass and set ``watches`` to ``(group, plural)`` keys; implement ``reconcile``."""

    name = "controller"
    watches = ()
    # Seconds between full resyncs (every object of the watched kinds is queued again); 0 disables.
    resync_period = 0.0

    def __init__(self, ctx):
        self.ctx = ctx
        self.store = ctx.store

    def keys_for(self, event):
        """Keys to reconcile for a store event: by default ``(group, plural, namespace, name)`` of the object."""
        meta = event.obj.get("metadata", {})
        return [(event.rtype_key[0], event.rtype_key[1], meta.get("namespace", ""), meta.get("name"))]

    def initial_keys(self):
        keys = []
        for group, plural in self.watches:
            rtype = self.store.registry.by_plural(plural, group)
            if rtype is None:
                continue
            items, _rv = self.store.list(rtype)
            keys.extend((group, plural, o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items)
        return keys

    def reconcile(self, key):
        """Bring the world closer to the desired state. Return seconds to requeue after, or None."""
        raise NotImplementedError


class _Queue:
    """A de-duplicating work queue with delayed requeue."""

    def __init__(self):
        self._cond = threading.Condition()
        self._ready = []
        self._queued = set()
        self._delayed = []          # heap of (due, seq, key)
        self._seq = 0
        self.busy = False

    def add(self, key, delay=0.0):
        with self._cond:
            if delay > 0:
                self._seq += 1
                heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cond.notify_all()

    def get(self, stop):
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _due, _seq, key = heapq.heappop(self._delayed)
                    if key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self.busy = True
                    return key
                timeout = 0.5
                if self._delayed:
                    timeout = max(0.0, min(timeout, self._delayed[0][0] - now))
                self._cond.wait(timeout)
            return None

    def done(self):
        with self._cond:
            self.busy = False
            self._cond.notify_all()

    def idle(self, horizon):
        """True when nothing is ready or running and nothing is due within ``horizon`` seconds."""
        with self._cond:
            due_soon = self._delayed and self._delayed[0][0] <= time.monotonic() + horizon
            return not self._ready and not self.busy and not due_soon


class ControllerManager:
    """Runs controllers in worker threads and dispatches store events to them."""

    def __init__(self, store, workers_per_controller=1):
        self.store = store
        self._controllers = []
        self._stop = threading.Event()
        self._threads = []
        self._workers = workers_per_controller
        store.add_listener(self._on_event)

    def add(self, controller, workers=None):
        queue_ = _Queue()
        self._controllers.append((controller, queue_, workers or self._workers))
        return controller

    def controllers(self):
        return [c for c, _q, _w in self._controllers]

    def _on_event(self, event):
        for controller, queue_, _workers in self._controllers:
            if event.rtype_key in controller.watches:
                try:
                    keys = controller.keys_for(event)
                except Exception:  # pylint: disable=broad-except
                    LOG.exception("%s: keys_for failed", controller.name)
                    continue
                for key in keys:
                    queue_.add(key)

    def start(self):
        self._stop.clear()
        for controller, queue_, workers in self._controllers:
            for key in controller.initial_keys():
                queue_.add(key)
            for index in range(workers):
                thread = threading.Thread(target=self._run, args=(controller, queue_), name="%s-%d" % (controller.name, index), daemon=True)
                thread.start()
                self._threads.append(thread)
            if controller.resync_period:
                thread = threading.Thread(target=self._resync, args=(controller, queue_), name="%s-resync" % controller.name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def resync(self):
        """Queue every watched object of every controller again (after a wipe or install)."""
        for controller, queue_, _workers in self._controllers:
            for key in controller.initial_keys():
                queue_.add(key)

    def _resync(self, controller, queue_):
        while not self._stop.wait(controller.resync_period):
            try:
                for key in controller.initial_keys():
                    queue_.add(key)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("%s: resync failed", controller.name)

    def _run(self, controller, queue_):
        while not self._stop.is_set():
            key = queue_.get(self._stop)
            if key is None:
                return
            try:
                delay = controller.reconcile(key)
            except errors.Conflict:
                delay = 0.05
            except errors.NotFound:
                delay = None
            except Exception:  # pylint: disable=broad-except
                LOG.exception("%s: reconcile %s failed", controller.name, key)
                delay = 1.0
            finally:
                queue_.done()
            if delay is not None:
                queue_.add(key, delay)

    def wait_idle(self, timeout=10.0, horizon=0.0):
        """Wait until no controller has work ready (or due within ``horizon`` s). Returns True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(q.idle(horizon) for _c, q, _w in self._controllers):
                time.sleep(0.02)
                if all(q.idle(horizon) for _c, q, _w in self._controllers):
                    return True
            time.sleep(0.02)
        return False

    def stop(self):
        self._stop.set()
        for _controller, queue_, _workers in self._controllers:
            with queue_._cond:  # pylint: disable=protected-access
                queue_._cond.notify_all()  # pylint: disable=protected-access
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
