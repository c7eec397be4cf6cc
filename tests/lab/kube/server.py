# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Kubernetes API server: HTTP in front of the Store.

It speaks what kubernetes.core (through the kubernetes Python client's
DynamicClient) and kubectl send: discovery, CRUD, list/watch, the four patch
types, dry run, status/scale/exec/log subresources, Tables for ``kubectl get``,
bearer-token auth like k3s, an audit log and injectable API faults.

It runs aiohttp on its own event loop in a background thread; store calls run
in a small thread pool because the store lock may be held by controllers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import hmac
import importlib
import json
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from aiohttp import web

from .. import api_errors as errors
from . import patch, schema
from ..audit import AuditLog
from .kubeconfig import lab_certificates, write_kubeconfig
from .selectors import parse_field_selector
from .store import now_rfc3339
from .tables import build_table, wants_table

LOG = logging.getLogger("lab.api")

K8S_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.5+k3s1",
    "gitCommit": "9d4f5a1c6c3f0b9a4b1e0e7f0d8c2a8e5b6c7d81",
    "gitTreeState": "clean",
    "buildDate": "2025-09-25T18:04:52Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
USER = "system:admin"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
BOOKMARK_INTERVAL = 1.0
WATCH_POLL = 0.05
MAX_BODY = 3 * 1024 * 1024
# Resources whose DELETE answers with the object rather than a Status (ReturnDeletedObject in their registry).
_RETURN_DELETED = {("", "pods"), ("", "serviceaccounts"), ("storage.k8s.io", "storageclasses")}
_BUILTIN_CATEGORIES = {
    ("", "pods"): ("all",), ("", "services"): ("all",), ("apps", "deployments"): ("all",), ("apps", "statefulsets"): ("all",),
    ("apps", "daemonsets"): ("all",), ("apps", "replicasets"): ("all",), ("batch", "jobs"): ("all",),
}
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_FIELD_LABELS = {
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
                   "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                     "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "services"): ("spec.clusterIP", "spec.type"),
    ("", "persistentvolumeclaims"): (),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
}
_FAULT_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource has expired"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("InternalError", "the server responded with the status code 502 but did not return more information"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
}


def version_priority(version):
    """Sort key of Kubernetes version priority: GA > beta > alpha, higher numbers first, then non-kube versions."""
    match = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0), version)


def selector_string(selector):
    """A LabelSelector object as the string form (Scale.status.selector)."""
    parts = ["%s=%s" % kv for kv in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        operator, key, values = expr.get("operator"), expr.get("key"), sorted(expr.get("values") or [])
        if operator == "In":
            parts.append("%s in (%s)" % (key, ",".join(values)))
        elif operator == "NotIn":
            parts.append("%s notin (%s)" % (key, ",".join(values)))
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append("!" + key)
    return ",".join(parts)


class _Request:
    """What a resource request addresses and how it is audited."""

    def __init__(self, method, path, query):
        self.method = method
        self.path = path
        self.query = query
        self.verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
        self.rtype = None
        self.namespace = None
        self.name = None
        self.subresource = None
        self.body = None
        self.dry_run = False
        self.code = None
        self.audited = False

    @property
    def write(self):
        return self.verb in WRITE_VERBS and self.subresource not in ("exec", "log")

    @property
    def resource(self):
        return self.rtype.plural if self.rtype else None


class ApiServer:
    """``start()`` serves on ``host``; ``url`` and ``token`` tell clients where and how."""

    def __init__(self, ctx, *, host="127.0.0.1", port=0, token=None, audit_path=None, tls=False, anonymous_health=False):
        """``tls=True`` serves https with a throwaway CA (``ca_pem``), which kubectl needs to send the token.

        k3s runs kube-apiserver with ``--anonymous-auth=false``: every path, /healthz and /version
        included, needs the token unless ``anonymous_health`` opens those two groups.
        """
        self.ctx = ctx
        self.tls = tls
        self.ca_pem = None
        self.store = ctx.store
        self.registry = ctx.store.registry
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self.audit = AuditLog(audit_path) if audit_path else None
        self.audit_path = audit_path
        self.url = None
        self.bookmark_interval = BOOKMARK_INTERVAL
        self.anonymous_health = anonymous_health
        self._loop = None
        self._thread = None
        self._runner = None
        self._closing = None
        self._ready = threading.Event()
        self._start_error = None
        self._executor = None

    # ---- lifecycle --------------------------------------------------------------
    def start(self):
        if self._thread is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lab-api-store")
        self._ready.clear()
        self._thread = threading.Thread(target=self._run_loop, name="lab-api-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._start_error is not None:
            error = self._start_error or RuntimeError("the lab API server did not start")
            self.stop()
            raise error

    def _run_loop(self):
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except Exception as exc:  # pylint: disable=broad-except
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self):
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        ssl_context = self._ssl_context() if self.tls else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        sockets = site._server.sockets  # pylint: disable=protected-access
        self.port = sockets[0].getsockname()[1]
        self.url = "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def _ssl_context(self):
        ca_pem, cert_pem, key_pem = lab_certificates(self.host)
        self.ca_pem = ca_pem
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="lab-api-tls-") as directory:
            cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
            with open(cert_path, "w", encoding="ascii") as handle:
                handle.write(cert_pem + ca_pem)
            with open(key_path, "w", encoding="ascii") as handle:
                handle.write(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context

    def write_kubeconfig(self, path, context="lab", namespace="default"):
        """A kubeconfig for this server (with its CA when it serves https)."""
        write_kubeconfig(path, self.url, self.token, context=context, namespace=namespace, ca_pem=self.ca_pem)

    async def _shutdown(self):
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self):
        """Close listeners, open watches and connections; returns within a few seconds."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("lab API server shutdown")
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._thread = None
        self._loop = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.audit is not None:
            self.audit.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # ---- helpers ------------------------------------------------------------------------
    async def _call(self, func, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    @staticmethod
    def _json(data, status=200, headers=None, pretty=False):
        text = json.dumps(data, indent=2 if pretty else None, separators=None if pretty else (",", ":"))
        # Exactly "application/json", no charset: the kubernetes client compares the header verbatim.
        response = web.Response(body=text.encode("utf-8"), status=status, headers={"Content-Type": "application/json"})
        for key, value in (headers or []):
            response.headers.add(key, value)
        return response

    def _status_response(self, error, headers=None):
        return self._json(error.status(), status=error.code, headers=headers)

    def _authorized(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), self.token.encode())

    def _record(self, request, info):
        if self.audit is None or info.audited:
            return
        info.audited = True
        self.audit.record(verb=info.verb, method=info.method, path=info.path, query=info.query, dry_run=info.dry_run,
                          write=info.write, code=info.code, user_agent=request.headers.get("User-Agent", ""), body=info.body,
                          resource=info.resource)

    # ---- entry point -------------------------------------------------------------------
    async def _handle(self, request):
        query = {k: request.query.getall(k) if len(request.query.getall(k)) > 1 else v for k, v in request.query.items()}
        info = _Request(request.method, request.path, query)
        try:
            response = await self._dispatch(request, info)
        except errors.ApiError as exc:
            response = self._status_response(exc, headers=getattr(exc, "headers", None))
        except asyncio.CancelledError:
            info.code = 499
            self._record(request, info)
            raise
        except ConnectionResetError:
            info.code = 0
            self._record(request, info)
            raise
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("lab API server: %s %s", request.method, request.path)
            response = self._status_response(errors.InternalError("Internal error occurred: %s" % exc))
        if info.code is None:
            info.code = response.status
        self._record(request, info)
        return response

    async def _dispatch(self, request, info):
        path = request.path.rstrip("/") or "/"
        health = path in ("/healthz", "/readyz", "/livez", "/version") or path.startswith(("/healthz/", "/readyz/", "/livez/"))
        if not self._authorized(request) and not (health and self.anonymous_health):
            try:
                self._parse(path, info)  # only for the audit entry's verb
            except errors.ApiError:
                pass
            raise errors.ApiError("Unauthorized", code=401, reason="Unauthorized")
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return self._json(K8S_VERSION)
        discovery = self._discovery(path)
        if discovery is not None:
            if request.method != "GET":
                raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
            return self._json(discovery)
        if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return self._json(self._openapi_v3(path))
        if path.startswith(("/openapi", "/.well-known")):
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        try:
            self._parse(path, info)
            refused = None
        except errors.ApiError as exc:
            refused = exc
        # A matching fault answers even for paths that would fail (the server itself is what is broken).
        fault = self.ctx.faults.api_fault_for(request.method, request.path) if getattr(self.ctx, "faults", None) else None
        if fault is not None:
            return await self._apply_fault(request, info, fault)
        if refused is not None:
            raise refused
        return await self._route(request, info)

    async def _apply_fault(self, request, info, fault):
        if fault.timeout and fault.timeout > 0:
            try:
                await asyncio.wait_for(self._closing.wait(), fault.timeout)
            except asyncio.TimeoutError:
                pass
            info.code = 0
            self._record(request, info)
            transport = request.transport
            if transport is not None:
                transport.abort()
            # Nothing reaches the client: the transport is gone.
            return web.Response(status=500)
        reason, message = _FAULT_REASONS.get(fault.status, ("InternalError", "injected fault"))
        headers = [("Retry-After", "1")] if fault.status == 429 else None
        details = {"retryAfterSeconds": 1} if fault.status == 429 else None
        return self._status_response(errors.ApiError(message, code=fault.status, reason=reason, details=details), headers=headers)

    # ---- discovery -------------------------------------------------------------------------
    def _discovery(self, path):
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % (self.host, self.port)}]}
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if parts == ["apis"]:
            groups = [self._group(name, versions) for name, versions in self.registry.group_versions().items() if name]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis":
            versions = self.registry.group_versions().get(parts[1])
            if not versions:
                raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
            return dict(self._group(parts[1], versions), kind="APIGroup", apiVersion="v1")
        if len(parts) == 3 and parts[0] == "apis":
            if parts[2] not in self.registry.group_versions().get(parts[1], []):
                raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
            return self._resource_list(parts[1], parts[2])
        return None

    @staticmethod
    def _group(name, versions):
        ordered = sorted(versions, key=version_priority)
        entries = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in ordered]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    def _resource_list(self, group, version):
        resources = []
        for rtype in sorted((r for r in self.registry.all() if r.group == group and r.version == version), key=lambda r: r.plural):
            entry = {"name": rtype.plural, "singularName": rtype.singular_name(), "namespaced": rtype.namespaced, "kind": rtype.kind,
                     "verbs": sorted(rtype.verbs)}
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            categories = rtype.categories or _BUILTIN_CATEGORIES.get(rtype.key, ())
            if categories:
                entry["categories"] = list(categories)
            entry["storageVersionHash"] = base64.b64encode(("%s/%s/%s" % (group, version, rtype.kind)).encode()[:8]).decode()
            resources.append(entry)
            for sub in rtype.subresources:
                resources.append(self._subresource_entry(rtype, sub))
            if rtype.key == ("", "namespaces"):
                resources.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False, "kind": "Namespace",
                                  "verbs": ["update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "%s/%s" % (group, version) if group else version,
                "resources": resources}

    @staticmethod
    def _subresource_entry(rtype, sub):
        entry = {"name": "%s/%s" % (rtype.plural, sub), "singularName": "", "namespaced": rtype.namespaced, "kind": rtype.kind,
                 "verbs": ["get", "patch", "update"]}
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub == "exec":
            entry.update(kind="PodExecOptions", verbs=["create", "get"])
        elif sub == "log":
            entry.update(verbs=["get"])
        return entry

    # ---- OpenAPI v3 (only what kubectl reads) ----------------------------------------------------
    def _openapi_v3(self, path):
        """The v3 discovery document, or one group-version's PATCH operations.

        kubectl checks there that PATCH supports ``fieldValidation`` (server-side
        validation); without request bodies it builds its patches from its own
        types (built-ins) or as JSON merge patches (custom resources).
        """
        group_versions = sorted({(r.group, r.version) for r in self.registry.all()})
        if path == "/openapi/v3":
            paths = {}
            for group, version in group_versions:
                prefix = "api/%s" % version if not group else "apis/%s/%s" % (group, version)
                digest = hashlib.sha256(json.dumps(self._openapi_paths(group, version), sort_keys=True).encode()).hexdigest()[:32].upper()
                paths[prefix] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (prefix, digest)}
            return {"paths": paths}
        parts = path[len("/openapi/v3/"):].split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        if (group, version) not in group_versions:
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
                "paths": self._openapi_paths(group, version), "components": {"schemas": {}}}

    def _openapi_paths(self, group, version):
        params = [{"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": True}} for name, kind in (
            ("dryRun", "string"), ("fieldManager", "string"), ("fieldValidation", "string"), ("force", "boolean"))]
        paths = {}
        for rtype in self.registry.all():
            if rtype.group != group or rtype.version != version:
                continue
            prefix = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
            scope = "/namespaces/{namespace}" if rtype.namespaced else ""
            paths["%s%s/%s/{name}" % (prefix, scope, rtype.plural)] = {"patch": {
                "operationId": "patch%s" % rtype.kind, "parameters": params, "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rtype.kind},
                "responses": {"200": {"description": "OK"}}}}
        return paths

    # ---- request parsing ---------------------------------------------------------------------
    def _parse(self, path, info):
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        rtype = self.registry.get(group, version, rest[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        info.rtype, info.namespace = rtype, namespace
        info.name = rest[1] if len(rest) > 1 else None
        info.subresource = rest[2] if len(rest) > 2 else None
        if info.subresource is not None and info.subresource not in rtype.subresources and not (
                rtype.key == ("", "namespaces") and info.subresource == "finalize"):
            raise errors.ApiError("the server could not find the requested resource", code=404, reason="NotFound")
        watch = str(info.query.get("watch", "")).lower() in ("true", "1")
        if info.method == "GET" and info.name is None:
            info.verb = "watch" if watch else "list"
        elif info.method == "DELETE" and info.name is None:
            info.verb = "deletecollection"
        elif info.method in ("PUT", "PATCH") and info.name is None:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        elif info.method == "POST" and info.name is not None and info.subresource is None:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        if info.subresource is None and info.verb not in rtype.verbs:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        info.dry_run = self._dry_run(info.query.get("dryRun"))

    @staticmethod
    def _dry_run(value):
        values = value if isinstance(value, list) else ([value] if value is not None else [])
        for item in values:
            if item != "All":
                cause = ("dryRun", 'Unsupported value: "%s": supported values: "All"' % item, "FieldValueNotSupported")
                raise errors.Invalid("CreateOptions", "", [cause], group="meta.k8s.io")
        return bool(values)

    async def _read_body(self, request, info, *, required=True, patch_type=None):
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.ApiError("Request entity too large: limit is %d" % MAX_BODY, code=413, reason="RequestEntityTooLarge") from None
        content_type = (request.content_type or "").lower()
        if "protobuf" in content_type or "cbor" in content_type:
            # kubectl's typed generators (kubectl create secret ...) send protobuf; the lab speaks JSON and YAML only.
            raise errors.UnsupportedMediaType("the lab API server accepts JSON and YAML request bodies only, not %s" % content_type)
        if not raw.strip():
            if required:
                raise errors.BadRequest("the body of the request was empty")
            return None
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            if "yaml" not in content_type and patch_type != patch.APPLY_PATCH:
                info.body = {"unparsed": len(raw)}
                raise errors.BadRequest("couldn't get version/kind; json parse error: invalid JSON in the request body") from None
            try:
                body = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                info.body = {"unparsed": len(raw)}
                raise errors.BadRequest("error decoding YAML: %s" % exc) from None
        info.body = body
        return body

    def _manager(self, request, info):
        manager = info.query.get("fieldManager")
        if manager is not None and (len(manager) > 128 or not manager.isprintable()):
            raise errors.Invalid("PatchOptions", "", [("fieldManager", 'Invalid value: "%s": must be less than or equal to 128 printable '
                                                      "characters" % manager, "FieldValueInvalid")], group="meta.k8s.io")
        return patch.manager_from(manager, request.headers.get("User-Agent", ""))

    def _field_validation(self, info):
        directive = info.query.get("fieldValidation") or "Warn"
        if directive not in ("Ignore", "Warn", "Strict"):
            raise errors.BadRequest('fieldValidation must be one of "Ignore", "Warn", or "Strict", got %s' % directive)
        return directive

    @staticmethod
    def _unknown_field_check(rtype, obj, directive, warnings):
        if not rtype.is_crd or not rtype.schema or directive == "Ignore":
            return
        unknown = schema.unknown_fields(obj, rtype.schema)
        if not unknown:
            return
        if directive == "Strict":
            raise errors.BadRequest('%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (
                rtype.kind, rtype.version, rtype.kind, ", ".join('unknown field "%s"' % u for u in unknown)))
        warnings.extend('unknown field "%s"' % u for u in unknown)

    @staticmethod
    def _warning_headers(warnings):
        return [("Warning", '299 - %s' % json.dumps(text)) for text in warnings]

    def _check_type(self, rtype, body):
        if not isinstance(body, dict):
            raise errors.BadRequest("the body of the request is not a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rtype.api_version:
            raise errors.BadRequest("the API version in the data (%s) does not match the expected API version (%s)" % (api_version, rtype.api_version))
        if kind and kind != rtype.kind:
            raise errors.BadRequest("the kind in the data (%s) does not match the expected kind (%s)" % (kind, rtype.kind))

    @staticmethod
    def _check_name(body, name):
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise errors.BadRequest("the name of the object (%s) does not match the name on the URL (%s)" % (body_name, name))

    def _check_field_selector(self, rtype, text):
        requirements = parse_field_selector(text)
        allowed = set(_COMMON_FIELDS)
        if rtype.is_crd:
            crd = self.store.try_get("customresourcedefinitions", None, "%s.%s" % (rtype.plural, rtype.group))
            for version in ((crd or {}).get("spec") or {}).get("versions") or []:
                if version.get("name") == rtype.version:
                    allowed |= {f.get("jsonPath", "").lstrip(".") for f in version.get("selectableFields") or []}
        else:
            allowed |= set(_FIELD_LABELS.get(rtype.key, ()))
        for key, _op, _value in requirements:
            if key not in allowed:
                raise errors.BadRequest('field label not supported: %s' % key)
        return requirements

    # ---- routing -------------------------------------------------------------------------------
    async def _route(self, request, info):
        sub = info.subresource
        if sub == "exec":
            return await self._exec(request, info)
        if sub == "log":
            if request.method != "GET":
                raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
            await self._call(self.store.get, info.rtype, info.namespace, info.name)
            return web.Response(text="", content_type="text/plain")
        handler = {
            "list": self._list, "watch": self._watch, "get": self._get, "create": self._create, "update": self._update,
            "patch": self._patch, "delete": self._delete, "deletecollection": self._delete_collection,
        }[info.verb]
        return await handler(request, info)

    async def _exec(self, request, info):
        info.verb = "create" if request.method == "POST" else "get"
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        try:
            exec_module = importlib.import_module(".exec", __package__)
        except ImportError:
            raise errors.ApiError("pods/exec is not implemented in this lab", code=501, reason="NotImplemented") from None
        await self._call(self.store.get, info.rtype, info.namespace, info.name)
        response = await exec_module.handle_exec(request, self.ctx, info.namespace, info.name)
        info.code = response.status
        return response

    def _respond(self, request, info, obj, status=200, warnings=()):
        pretty = str(info.query.get("pretty", "")).lower() in ("true", "1")
        return self._json(obj, status=status, headers=self._warning_headers(warnings), pretty=pretty)

    def _crd_of(self, rtype):
        if not rtype.is_crd:
            return None
        return self.store.try_get("customresourcedefinitions", None, "%s.%s" % (rtype.plural, rtype.group))

    async def _get(self, request, info):
        obj = await self._call(self.store.get, info.rtype, info.namespace, info.name)
        if info.subresource == "scale":
            return self._respond(request, info, self._to_scale(info.rtype, obj))
        if wants_table(request.headers.get("Accept")):
            crd = await self._call(self._crd_of, info.rtype)
            return self._respond(request, info, build_table(info.rtype, [obj], crd=crd, include_object=info.query.get("includeObject", "Metadata"),
                                                            resource_version=obj["metadata"].get("resourceVersion", "")))
        return self._respond(request, info, obj)

    async def _list(self, request, info):
        rtype = info.rtype
        field_req = await self._call(self._check_field_selector, rtype, info.query.get("fieldSelector", ""))
        items, resource_version = await self._call(self.store.list, rtype, info.namespace, info.query.get("labelSelector"), field_req)
        continue_token, remaining = None, None
        start = info.query.get("continue")
        if start:
            try:
                position = json.loads(base64.urlsafe_b64decode(start.encode()).decode())["start"]
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise errors.BadRequest("continue key is not valid: %s" % start) from None
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > tuple(position)]
        limit = info.query.get("limit")
        if limit:
            try:
                limit = int(limit)
            except ValueError:
                raise errors.BadRequest("limit must be an integer") from None
            if 0 < limit < len(items):
                last = items[limit - 1]["metadata"]
                continue_token = base64.urlsafe_b64encode(json.dumps(
                    {"rv": resource_version, "start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
                remaining = len(items) - limit
                items = items[:limit]
        if wants_table(request.headers.get("Accept")):
            crd = await self._call(self._crd_of, rtype)
            return self._respond(request, info, build_table(rtype, items, crd=crd, include_object=info.query.get("includeObject", "Metadata"),
                                                            resource_version=resource_version, continue_token=continue_token))
        metadata = {"resourceVersion": resource_version}
        if continue_token:
            metadata["continue"] = continue_token
            metadata["remainingItemCount"] = remaining
        return self._respond(request, info, {"kind": rtype.kind + "List", "apiVersion": rtype.api_version, "metadata": metadata,
                                             "items": self._list_items(rtype, items)})

    @staticmethod
    def _list_items(rtype, items):
        """Typed lists carry no apiVersion/kind per item; custom resource (unstructured) lists do."""
        if rtype.is_crd:
            return items
        return [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items]

    async def _watch(self, request, info):
        rtype = info.rtype
        field_req = await self._call(self._check_field_selector, rtype, info.query.get("fieldSelector", ""))
        label_selector = info.query.get("labelSelector")
        resource_version = info.query.get("resourceVersion")
        try:
            timeout = int(info.query.get("timeoutSeconds") or 0)
        except ValueError:
            raise errors.BadRequest("timeoutSeconds must be an integer") from None
        bookmarks = str(info.query.get("allowWatchBookmarks", "")).lower() in ("true", "1")
        send_initial = str(info.query.get("sendInitialEvents", "")).lower() in ("true", "1")
        table = wants_table(request.headers.get("Accept"))
        crd = await self._call(self._crd_of, rtype) if table else None
        initial = []
        if send_initial:
            initial, resource_version = await self._call(self.store.list, rtype, info.namespace, label_selector, field_req)
        watch = await self._call(self.store.watch, rtype, info.namespace, resource_version, label_selector, field_req)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        info.code = 200
        try:
            await response.prepare(request)
            self._record(request, info)

            async def send(event_type, obj):
                if table and event_type not in ("ERROR", "BOOKMARK"):
                    obj = build_table(rtype, [obj], crd=crd, include_object=info.query.get("includeObject", "Metadata"),
                                      resource_version=obj.get("metadata", {}).get("resourceVersion", ""))
                await response.write(json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n")

            def bookmark(annotations=None):
                meta = {"resourceVersion": self.store.resource_version}
                if annotations:
                    meta["annotations"] = annotations
                return {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}

            for obj in initial:
                await send("ADDED", obj)
            if send_initial:
                await send("BOOKMARK", bookmark({"k8s.io/initial-events-end": "true"}))
            deadline = time.monotonic() + timeout if timeout > 0 else None
            last_bookmark = time.monotonic()
            while not self._closing.is_set():
                event = watch.next(timeout=0)
                if event is None:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        break
                    if bookmarks and now - last_bookmark >= self.bookmark_interval:
                        await send("BOOKMARK", bookmark())
                        last_bookmark = now
                    try:
                        await asyncio.wait_for(self._closing.wait(), WATCH_POLL)
                    except asyncio.TimeoutError:
                        pass
                    continue
                event_type, obj = event
                await send(event_type, obj)
                if event_type == "ERROR":
                    break
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            watch.close()
        return response

    async def _create(self, request, info):
        rtype = info.rtype
        if info.subresource is not None:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        if rtype.namespaced and info.namespace is None:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        body = await self._read_body(request, info)
        self._check_type(rtype, body)
        directive = self._field_validation(info)
        warnings = []
        self._unknown_field_check(rtype, body, directive, warnings)
        manager = self._manager(request, info)
        body = copy.deepcopy(body)
        body.setdefault("metadata", {}).pop("managedFields", None)
        patch.record_update(None, body, rtype, manager, None, now_rfc3339())
        created = await self._call(self.store.create, rtype, body, namespace=info.namespace, dry_run=info.dry_run, user=USER)
        return self._respond(request, info, created, status=201, warnings=warnings)

    async def _update(self, request, info):
        rtype, sub = info.rtype, info.subresource
        body = await self._read_body(request, info)
        if sub == "scale":
            return await self._update_scale(request, info, body)
        self._check_type(rtype, body)
        self._check_name(body, info.name)
        if rtype.is_crd and sub is None and not (body.get("metadata") or {}).get("resourceVersion"):
            # The custom resource strategy does not allow unconditional updates (AllowUnconditionalUpdate false).
            raise errors.Invalid(rtype.plural, info.name, [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update",
                                                            "FieldValueInvalid")], group=rtype.group)
        directive = self._field_validation(info)
        warnings = []
        manager = self._manager(request, info)
        now = now_rfc3339()

        def mutate(current):
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            meta.pop("managedFields", None)
            if sub == "finalize":
                finalized = copy.deepcopy(current)
                finalized.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
                finalized["metadata"]["resourceVersion"] = meta.get("resourceVersion") or current["metadata"]["resourceVersion"]
                return finalized
            self._unknown_field_check(rtype, new, directive, warnings)
            if sub == "status":
                meta["managedFields"] = copy.deepcopy(current["metadata"].get("managedFields"))
                return new
            return patch.record_update(current, new, rtype, manager, None, now)

        updated = await self._call(self.store.modify, rtype, info.namespace, info.name, mutate,
                                   subresource="status" if sub == "status" else None, dry_run=info.dry_run, user=USER)
        return self._respond(request, info, updated, warnings=warnings)

    # ---- scale ------------------------------------------------------------------------------------
    @staticmethod
    def _to_scale(rtype, obj):
        meta = obj["metadata"]
        status = obj.get("status") or {}
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0), "selector": selector_string((obj.get("spec") or {}).get("selector"))},
        }

    @staticmethod
    def _scale_replicas(name, scale_obj, current):
        given_rv = (scale_obj.get("metadata") or {}).get("resourceVersion")
        if given_rv and given_rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict("deployments" if current.get("kind") == "Deployment" else current.get("kind", "").lower() + "s",
                                  name, current.get("apiVersion", "").rpartition("/")[0])
        replicas = (scale_obj.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.Invalid("Scale", name, [("spec.replicas", "Invalid value: %s: must be greater than or equal to 0" % json.dumps(replicas),
                                                  "FieldValueInvalid")], group="autoscaling")
        return replicas

    async def _update_scale(self, request, info, body):
        rtype = info.rtype
        if not isinstance(body, dict):
            raise errors.BadRequest("the body of the request is not a JSON object")
        self._check_name(body, info.name)

        def mutate(current):
            replicas = self._scale_replicas(info.name, body, current)
            new = copy.deepcopy(current)
            new.setdefault("spec", {})["replicas"] = replicas
            return new

        updated = await self._call(self.store.modify, rtype, info.namespace, info.name, mutate, subresource="scale",
                                   dry_run=info.dry_run, user=USER)
        return self._respond(request, info, self._to_scale(rtype, updated))

    # ---- patch ---------------------------------------------------------------------------------------
    async def _patch(self, request, info):
        rtype, sub = info.rtype, info.subresource
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        allowed = patch.CUSTOM_PATCH_TYPES if rtype.is_crd else patch.BUILTIN_PATCH_TYPES
        if content_type not in allowed:
            raise errors.UnsupportedMediaType("the body of the request was in an unknown format - accepted media types include: %s"
                                              % ", ".join(allowed))
        force_param = info.query.get("force")
        force = str(force_param).lower() in ("true", "1")
        field_manager = info.query.get("fieldManager")
        if content_type == patch.APPLY_PATCH and not field_manager:
            raise errors.Invalid("PatchOptions", "", [("fieldManager", "Required value: is required for apply patch", "FieldValueRequired")],
                                 group="meta.k8s.io")
        if content_type != patch.APPLY_PATCH and force_param is not None:
            raise errors.Invalid("PatchOptions", "", [("force", "Forbidden: may not be specified for non-apply patch", "FieldValueForbidden")],
                                 group="meta.k8s.io")
        body = await self._read_body(request, info, patch_type=content_type)
        directive = self._field_validation(info)
        manager = self._manager(request, info)
        warnings = []
        now = now_rfc3339()
        if content_type == patch.APPLY_PATCH:
            return await self._apply(request, info, body, manager, force, directive, warnings, now)
        list_types = patch.list_types_for(rtype)

        def apply_to(document):
            if content_type == patch.MERGE_PATCH:
                if not isinstance(body, dict):
                    raise errors.BadRequest("json: cannot unmarshal array into Go value of type map[string]interface {}")
                return patch.merge_patch(document, body)
            if content_type == patch.JSON_PATCH:
                return patch.json_patch(document, body)
            return patch.strategic_merge_patch(document, body, list_types)

        def mutate(current):
            if sub == "scale":
                scaled = apply_to(self._to_scale(rtype, current))
                new = copy.deepcopy(current)
                new.setdefault("spec", {})["replicas"] = self._scale_replicas(info.name, scaled, current)
                return new
            new = apply_to(current)
            if not isinstance(new, dict):
                raise errors.BadRequest("the patched object is not a JSON object")
            self._check_type(rtype, new)
            new.setdefault("metadata", {})
            if new["metadata"].get("name") not in (None, info.name):
                raise errors.BadRequest("metadata.name: Invalid value: %s: field is immutable" % json.dumps(new["metadata"]["name"]))
            self._unknown_field_check(rtype, new, directive, warnings)
            if sub == "status":
                new["metadata"]["managedFields"] = copy.deepcopy(current["metadata"].get("managedFields"))
                return new
            new["metadata"]["managedFields"] = copy.deepcopy(current["metadata"].get("managedFields"))
            return patch.record_update(current, new, rtype, manager, None, now)

        updated = await self._call(self.store.modify, rtype, info.namespace, info.name, mutate, subresource=sub,
                                   dry_run=info.dry_run, user=USER)
        if sub == "scale":
            updated = self._to_scale(rtype, updated)
        return self._respond(request, info, updated, warnings=warnings)

    async def _apply(self, request, info, body, manager, force, directive, warnings, now):
        rtype, sub = info.rtype, info.subresource
        if sub == "scale":
            raise errors.UnsupportedMediaType("the body of the request was in an unknown format - accepted media types include: "
                                              + ", ".join(patch.BUILTIN_PATCH_TYPES[:3]))
        if not isinstance(body, dict):
            raise errors.BadRequest("error decoding YAML: the applied configuration is not an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.BadRequest("Object 'Kind' is missing in '%s'" % json.dumps(body)[:200]
                                    if not body.get("kind") else "Object 'apiVersion' is missing in '%s'" % json.dumps(body)[:200])
        self._check_type(rtype, body)
        self._check_name(body, info.name)
        applied = copy.deepcopy(body)
        applied.setdefault("metadata", {})["name"] = info.name
        if info.namespace:
            applied["metadata"].setdefault("namespace", info.namespace)
        applied["metadata"].pop("managedFields", None)
        self._unknown_field_check(rtype, applied, directive, warnings)

        def mutate(current):
            return patch.server_side_apply(current, applied, rtype, manager, force=force, subresource=sub, now=now)

        for _attempt in range(3):
            try:
                updated = await self._call(self.store.modify, rtype, info.namespace, info.name, mutate, subresource=sub,
                                           dry_run=info.dry_run, user=USER)
                return self._respond(request, info, updated, warnings=warnings)
            except errors.NotFound:
                if sub is not None:
                    raise
            new = patch.server_side_apply(None, applied, rtype, manager, force=force, now=now)
            try:
                created = await self._call(self.store.create, rtype, new, namespace=info.namespace, dry_run=info.dry_run, user=USER)
                return self._respond(request, info, created, status=201, warnings=warnings)
            except errors.AlreadyExists:
                continue
        raise errors.Conflict(rtype.plural, info.name, rtype.group)

    # ---- delete ---------------------------------------------------------------------------------------------
    def _delete_options(self, body, info):
        options = body if isinstance(body, dict) else {}
        propagation = options.get("propagationPolicy") or info.query.get("propagationPolicy")
        orphan = options.get("orphanDependents", info.query.get("orphanDependents"))
        if propagation is None and str(orphan).lower() == "true":
            propagation = "Orphan"
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise errors.Invalid("DeleteOptions", "", [("propagationPolicy", 'Unsupported value: "%s": supported values: "Foreground", '
                                                        '"Background", "Orphan", "nil"' % propagation, "FieldValueNotSupported")],
                                 group="meta.k8s.io")
        dry_run = info.dry_run or self._dry_run(options.get("dryRun"))
        info.dry_run = dry_run
        return propagation or "Background", options.get("preconditions") or {}, dry_run

    async def _delete(self, request, info):
        rtype = info.rtype
        if info.subresource is not None:
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        body = await self._read_body(request, info, required=False)
        propagation, preconditions, dry_run = self._delete_options(body, info)
        obj = await self._call(self.store.delete, rtype, info.namespace, info.name, dry_run=dry_run, preconditions=preconditions,
                               propagation=propagation, user=USER)
        still_there = bool(obj["metadata"].get("deletionTimestamp")) and (
            dry_run or await self._call(self.store.try_get, rtype, info.namespace, info.name) is not None)
        if still_there or rtype.key in _RETURN_DELETED:
            return self._respond(request, info, obj)
        details = {"name": info.name, "kind": rtype.plural, "uid": obj["metadata"].get("uid")}
        if rtype.group:
            details["group"] = rtype.group
        return self._respond(request, info, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    async def _delete_collection(self, request, info):
        rtype = info.rtype
        body = await self._read_body(request, info, required=False)
        propagation, preconditions, dry_run = self._delete_options(body, info)
        del preconditions
        field_req = await self._call(self._check_field_selector, rtype, info.query.get("fieldSelector", ""))
        items, resource_version = await self._call(self.store.list, rtype, info.namespace, info.query.get("labelSelector"), field_req)
        deleted = []
        for item in items:
            meta = item["metadata"]
            try:
                deleted.append(await self._call(self.store.delete, rtype, meta.get("namespace"), meta["name"], dry_run=dry_run,
                                                propagation=propagation, user=USER))
            except errors.NotFound:
                continue
        return self._respond(request, info, {"kind": rtype.kind + "List", "apiVersion": rtype.api_version,
                                             "metadata": {"resourceVersion": resource_version}, "items": self._list_items(rtype, deleted)})
