# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Longhorn's admission webhooks served over HTTPS, called by the real API server.

Longhorn registers one mutating and one validating webhook (``mutator.longhorn.io`` and
``validator.longhorn.io`` in the ``longhorn-webhook-mutator``/``-validator`` configurations,
served by ``longhorn-admission-webhook:9502`` at ``/v1/webhook/mutation`` and
``/v1/webhook/validation``; longhorn-manager ``webhook/server/server.go``).  The lab's rules
(``tests/lab/longhorn/*webhooks.py``) register callbacks on an :class:`AdmissionChain`; this
module turns each ``admission.k8s.io/v1`` AdmissionReview into an :class:`AdmissionRequest`,
runs the callbacks and answers with a JSON patch or a refusal.  The API server adds the
``admission webhook "..." denied the request:`` prefix to a refusal, so we send the bare message.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import ssl
import threading
from dataclasses import dataclass

LOG = logging.getLogger("lab.admission")

MUTATOR = "mutator.longhorn.io"
VALIDATOR = "validator.longhorn.io"
MUTATION_PATH = "/v1/webhook/mutation"
VALIDATION_PATH = "/v1/webhook/validation"
_DENIED_PREFIX = 'admission webhook "%s" denied the request: '


@dataclass
class AdmissionRequest:
    """What admission callbacks see. ``obj`` may be changed in place by mutating callbacks."""

    operation: str          # CREATE | UPDATE | DELETE
    rtype: object
    obj: dict | None
    old: dict | None
    subresource: str | None
    dry_run: bool
    user: str


class AdmissionChain:
    """Mutating then validating callbacks, in registration order, as the API server calls webhooks."""

    def __init__(self):
        self.mutators = []
        self.validators = []

    def add_mutator(self, callback):
        """``callback(request)`` may change ``request.obj`` in place or raise an ApiError to refuse."""
        self.mutators.append(callback)

    def add_validator(self, callback):
        """``callback(request)`` raises an ApiError to refuse."""
        self.validators.append(callback)


def _json_patch(before, after):
    """A JSON patch (RFC 6902) from ``before`` to ``after`` at top-level-key granularity."""
    patch = []
    for key in sorted(set(before) | set(after)):
        path = "/" + key.replace("~", "~0").replace("/", "~1")
        if key not in after:
            patch.append({"op": "remove", "path": path})
        elif key not in before:
            patch.append({"op": "add", "path": path, "value": after[key]})
        elif before[key] != after[key]:
            patch.append({"op": "replace", "path": path, "value": after[key]})
    return patch


def _refusal(error, webhook):
    """The ``status`` of a denied AdmissionReview response, from an ApiError."""
    message = getattr(error, "message", None) or str(error)
    prefix = _DENIED_PREFIX % webhook
    if message.startswith(prefix):
        message = message[len(prefix):]
    status = {"code": getattr(error, "code", 500) or 500, "message": message, "reason": getattr(error, "reason", "InternalError")}
    details = getattr(error, "details", None)
    if details:
        status["details"] = details
    return status


def review(chain, registry, body, mutating):
    """Answer one AdmissionReview (a dict) with the AdmissionReview response (a dict)."""
    from . import api_errors as errors   # the lab's ApiError family: what callbacks raise to refuse
    request = body.get("request") or {}
    resource = request.get("resource") or {}
    rtype = registry.by_plural(resource.get("resource", ""), resource.get("group", ""))
    response = {"uid": request.get("uid", ""), "allowed": True}
    if rtype is None:
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    original = request.get("object")
    admission = AdmissionRequest(
        operation=request.get("operation", ""), rtype=rtype,
        obj=copy.deepcopy(original) if original is not None else None,
        old=request.get("oldObject"), subresource=request.get("subResource") or None,
        dry_run=bool(request.get("dryRun")), user=(request.get("userInfo") or {}).get("username", ""))
    webhook = MUTATOR if mutating else VALIDATOR
    try:
        for callback in chain.mutators if mutating else chain.validators:
            callback(admission)
    except errors.ApiError as exc:
        response.update(allowed=False, status=_refusal(exc, webhook))
    except Exception as exc:  # pylint: disable=broad-except
        LOG.exception("%s failed on %s %s", webhook, request.get("operation"), resource)
        response.update(allowed=False, status={"code": 500, "reason": "InternalError", "message": "internal error: %s" % exc})
    else:
        if mutating and original is not None and admission.obj != original:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(_json_patch(original, admission.obj)).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class AdmissionServer:
    """HTTPS on 127.0.0.1, in a thread of its own; callbacks run in a worker pool (they call the API)."""

    def __init__(self, chain, registry, cert_file, key_file, port=0):
        self.chain = chain
        self.registry = registry
        self._cert = cert_file
        self._key = key_file
        self.port = port
        self._loop = None
        self._thread = None
        self._runner = None
        self._ready = threading.Event()
        self._error = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    async def _handle(self, request, mutating):
        from aiohttp import web
        body = await request.json()
        answer = await asyncio.get_running_loop().run_in_executor(None, review, self.chain, self.registry, body, mutating)
        return web.json_response(answer)

    async def _serve(self):
        from aiohttp import web
        app = web.Application()

        async def mutation(request):
            return await self._handle(request, True)

        async def validation(request):
            return await self._handle(request, False)

        app.router.add_post(MUTATION_PATH, mutation)
        app.router.add_post(VALIDATION_PATH, validation)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert, self._key)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # pylint: disable=protected-access

    def _run(self):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:  # pylint: disable=broad-except
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="lab-admission-webhook", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self):
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def configurations(self, ca_bundle_pem):
        """The Mutating/ValidatingWebhookConfiguration Longhorn installs, pointing at this server."""
        ca_bundle = base64.b64encode(ca_bundle_pem.encode() if isinstance(ca_bundle_pem, str) else ca_bundle_pem).decode()
        rules = [{"apiGroups": ["longhorn.io"], "apiVersions": ["v1beta2"], "resources": ["*"], "scope": "*"}]

        def webhook(name, path, operations):
            return {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                    "timeoutSeconds": 10, "matchPolicy": "Equivalent",
                    "clientConfig": {"url": self.url + path, "caBundle": ca_bundle},
                    "rules": [dict(rule, operations=operations) for rule in rules]}

        mutating = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                    "metadata": {"name": "longhorn-webhook-mutator"},
                    "webhooks": [webhook(MUTATOR, MUTATION_PATH, ["CREATE", "UPDATE"])]}
        validating = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                      "metadata": {"name": "longhorn-webhook-validator"},
                      "webhooks": [webhook(VALIDATOR, VALIDATION_PATH, ["CREATE", "UPDATE", "DELETE"])]}
        return mutating, validating

    def register(self, admin, ca_cert_path):
        """Create the webhook configurations through ``admin`` (an ApiClient), or point existing ones at this
        server: a datastore from an earlier start names the admission server's earlier port."""
        with open(ca_cert_path, encoding="utf-8") as handle:
            configurations = self.configurations(handle.read())
        for body in configurations:
            plural = body["kind"].lower() + "s"
            current = admin.try_get(plural, "", body["metadata"]["name"])
            if current is None:
                admin.create(plural, body)
            elif [w.get("clientConfig") for w in current.get("webhooks") or []] != [w["clientConfig"] for w in body["webhooks"]]:
                admin.modify(plural, "", body["metadata"]["name"], lambda obj, new=body: obj.update(webhooks=new["webhooks"]))
