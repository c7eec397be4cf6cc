# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Kubernetes access for the collection's modules, built on kubernetes.core.

The client, auth options and check mode (server-side dry run) come from
kubernetes.core; this adds what batch modules need: typed errors, bounded
retries on 429/5xx/connection errors, and waits that poll a whole batch with one
list request per round.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import traceback

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    HAS_KUBERNETES_COLLECTION = True
    KUBERNETES_COLLECTION_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES_COLLECTION = False
    KUBERNETES_COLLECTION_IMPORT_ERROR = traceback.format_exc()
    AUTH_ARG_SPEC = {}
    AnsibleK8SModule = None  # pylint: disable=invalid-name

    class CoreException(Exception):  # type: ignore[no-redef]
        """Stand-in when kubernetes.core is missing."""

try:
    import yaml
except ImportError:
    yaml = None  # AnsibleK8SModule fails first: kubernetes.core requires PyYAML

try:
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError
    from urllib3.exceptions import HTTPError as Urllib3HTTPError
    HAS_KUBERNETES = True
except ImportError:
    HAS_KUBERNETES = False

    class DynamicApiError(Exception):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing."""

    class NotFoundError(DynamicApiError):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing."""

    class Urllib3HTTPError(Exception):  # type: ignore[no-redef]
        """Stand-in when urllib3 is missing."""

RETRYABLE_STATUS = (429, 500, 502, 503, 504)
MERGE_PATCH = "application/merge-patch+json"
# How many names a message lists before it says how many more there are.
KNOWN_NAMES_SHOWN = 20


class LonghornError(Exception):
    """A failure a module reports with fail_json; ``details`` goes into the result."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


class WaitTimeout(LonghornError):
    """A wait ran out; ``details['last']`` holds what was last observed."""


def auth_argument_spec(**module_specific):
    """kubernetes.core's auth options (documented by kubernetes.core.k8s_auth_options) plus the module's own."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(copy.deepcopy(module_specific))
    return spec


WAIT_ARG_SPEC = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=600),
    wait_sleep=dict(type="int", default=2),
)


def new_module(argument_spec, **kwargs):
    """An AnsibleK8SModule (checks for the kubernetes client and PyYAML), or a clear failure without kubernetes.core."""
    if not HAS_KUBERNETES_COLLECTION:
        from ansible.module_utils.basic import AnsibleModule, missing_required_lib
        module = AnsibleModule(argument_spec=argument_spec, **kwargs)
        module.fail_json(msg=missing_required_lib("kubernetes.core (collection)"), exception=KUBERNETES_COLLECTION_IMPORT_ERROR)
    return AnsibleK8SModule(argument_spec=argument_spec, **kwargs)


def api_error_message(exc):
    """The API server's own message (a Status object's ``message``), else a short description."""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                return status["message"]
        except (TypeError, ValueError):
            pass
    status_code = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return "%s %s" % (status_code, reason) if status_code else str(reason)


def known_names(names):
    """``a, b, c`` (sorted, at most KNOWN_NAMES_SHOWN, then how many more), or ``none``."""
    names = sorted(set(names))
    shown = ", ".join(names[:KNOWN_NAMES_SHOWN]) or "none"
    return shown + (" and %d more" % (len(names) - KNOWN_NAMES_SHOWN) if len(names) > KNOWN_NAMES_SHOWN else "")


def _auth_option(params, name):
    """An auth option as kubernetes.core takes it: the module option, else its K8S_AUTH_* variable. ``(value, source)``."""
    value = params.get(name)
    if value is not None:
        return value, name
    variable = "K8S_AUTH_%s" % name.upper()
    value = os.environ.get(variable)
    return (value, "%s (from %s)" % (name, variable)) if value else (None, name)


def _kubeconfig_paths(value):
    """The files a kubeconfig string names: kubernetes' KubeConfigMerger splits it like KUBECONFIG and expands ``~``."""
    return [os.path.expanduser(path) for path in str(value).split(os.pathsep) if path]


def kubeconfig_problem(params):
    """Why the kubeconfig given cannot be read, naming its path; None when it can (or is not used).

    kubernetes' loader skips paths that do not exist and then says only "No configuration found".
    """
    kubeconfig, source = _auth_option(params, "kubeconfig")
    if not kubeconfig or not isinstance(kubeconfig, str):
        return None  # not given, or an in-memory dict
    host = _auth_option(params, "host")[0]
    if host and (_auth_option(params, "api_key")[0] or all(_auth_option(params, n)[0] for n in ("username", "password"))
                 or all(_auth_option(params, n)[0] for n in ("client_cert", "client_key"))):
        return None  # kubernetes.core does not load a kubeconfig then
    paths = _kubeconfig_paths(kubeconfig)
    if not any(os.path.exists(path) for path in paths):
        return ("%s: the file %s does not exist; give the path of a kubeconfig file, or leave kubeconfig unset to use "
                "K8S_AUTH_KUBECONFIG, KUBECONFIG or ~/.kube/config" % (source, " or ".join(_unmasked(path) for path in paths)))
    for path in paths:
        if os.path.exists(path) and not os.path.isfile(path):
            return "%s: %s is not a file; give the path of a kubeconfig file" % (source, _unmasked(path))
    return None


def _unmasked(path):
    """A path as ``'<file>' in <directory>``: kubernetes.core marks kubeconfig no_log (it may be a dict holding tokens),
    and Ansible masks the option's value wherever it appears in a result; a path is no secret and must be named."""
    directory, name = os.path.split(path)
    return "'%s' in %s" % (name, directory) if directory and name else "'%s'" % path


def _kubeconfig_contexts(paths):
    names = []
    for path in paths:
        try:
            with open(path) as handle:
                config = yaml.safe_load(handle) or {}
        except Exception:  # pylint: disable=broad-except
            continue
        names.extend(c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict) and c.get("name"))
    return names


def client_error_message(params, exc):
    """kubernetes.core's "Could not create API client" message, with the context or kubeconfig it is about."""
    message = str(exc)
    context, context_source = _auth_option(params, "context")
    kubeconfig, _source = _auth_option(params, "kubeconfig")
    if isinstance(kubeconfig, dict):
        paths = []
    elif kubeconfig:
        paths = _kubeconfig_paths(kubeconfig)
    else:
        paths = _kubeconfig_paths(os.environ.get("KUBECONFIG") or "~/.kube/config")
    if context and "Expected object with name %s in" % context in message:
        return "%s: unknown context '%s' in the kubeconfig %s (known: %s)" % (
            context_source, context, " or ".join(_unmasked(path) for path in paths) or "(in memory)", known_names(_kubeconfig_contexts(paths)))
    if "No configuration found" in message and not kubeconfig:
        return ("%s; kubeconfig is not set, this is not a pod in a cluster, and %s does not exist: set kubeconfig "
                "(or K8S_AUTH_KUBECONFIG), or host with api_key" % (message, os.pathsep.join(paths)))
    return message


class K8sAccess:
    """Reads and writes through kubernetes.core's client; writes are dry runs in check mode."""

    def __init__(self, module, retries=5, retry_delay=0.5, max_delay=5.0, sleep=time.sleep):
        self.module = module
        params = getattr(module, "params", None) or {}
        problem = kubeconfig_problem(params)
        if problem:
            raise LonghornError(problem)
        try:
            self.client = get_api_client(module=module)
        except CoreException as exc:
            raise LonghornError(client_error_message(params, exc)) from None
        self._resources = {}
        self.retries = retries
        self.retry_delay = retry_delay
        self.max_delay = max_delay
        self._sleep = sleep

    @property
    def check_mode(self):
        return self.module.check_mode

    def resource(self, kind, api_version):
        key = (kind, api_version)
        if key not in self._resources:
            try:
                self._resources[key] = self.client.resource(kind, api_version)
            except Exception as exc:  # pylint: disable=broad-except
                raise LonghornError("Failed to find the %s/%s API: %s (is Longhorn installed?)" % (api_version, kind, exc)) from None
        return self._resources[key]

    def _call(self, action, func, *args, **kwargs):
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except NotFoundError:
                raise
            except DynamicApiError as exc:
                if getattr(exc, "status", None) in RETRYABLE_STATUS and attempt < self.retries:
                    attempt += 1
                    self._sleep(random.uniform(0, min(self.max_delay, self.retry_delay * (2 ** attempt))))
                    continue
                raise LonghornError("Failed to %s: %s" % (action, api_error_message(exc)), status=getattr(exc, "status", None)) from None
            except Urllib3HTTPError as exc:
                if attempt < self.retries:
                    attempt += 1
                    self._sleep(random.uniform(0, min(self.max_delay, self.retry_delay * (2 ** attempt))))
                    continue
                raise LonghornError("Failed to %s: %s" % (action, type(exc).__name__)) from None

    @staticmethod
    def _to_dict(obj):
        if obj is None:
            return None
        return obj.to_dict() if hasattr(obj, "to_dict") else obj

    def get(self, kind, api_version, name, namespace=None):
        resource = self.resource(kind, api_version)
        try:
            return self._to_dict(self._call("get %s %s" % (kind, name), self.client.get, resource, name=name, namespace=namespace))
        except NotFoundError:
            return None

    def list(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        resource = self.resource(kind, api_version)
        params = {"namespace": namespace}
        if label_selector:
            params["label_selector"] = label_selector
        if field_selector:
            params["field_selector"] = field_selector
        try:
            result = self._to_dict(self._call("list %s" % kind, self.client.get, resource, **params))
        except NotFoundError:
            return []
        # No limit is asked for, so a continue token means the server cut the list short: what it left out is
        # unknown, and deciding on the rest would not fail closed.
        token = (result.get("metadata") or {}).get("continue")
        if token:
            raise LonghornError("Failed to list %s: the API server returned a partial list (metadata.continue is set, "
                                "%s more item(s)); refusing to act on an incomplete listing"
                                % (kind, (result.get("metadata") or {}).get("remainingItemCount", "an unknown number of")))
        return result.get("items") or []

    def create(self, kind, api_version, body, namespace=None):
        resource = self.resource(kind, api_version)
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
        return self._to_dict(self._call("create %s %s" % (kind, name), self.client.create, resource, body, namespace=namespace))

    def merge_patch(self, kind, api_version, name, patch, namespace=None):
        resource = self.resource(kind, api_version)
        return self._to_dict(self._call("patch %s %s" % (kind, name), self.client.patch, resource, patch, name=name,
                                        namespace=namespace, content_type=MERGE_PATCH))

    def delete(self, kind, api_version, name, namespace=None):
        resource = self.resource(kind, api_version)
        try:
            return self._to_dict(self._call("delete %s %s" % (kind, name), self.client.delete, resource, name=name, namespace=namespace))
        except NotFoundError:
            return None

    def wait_for(self, kind, api_version, names, predicate, namespace=None, timeout=600, sleep=2, label_selector=None, clock=time.monotonic):
        """Poll until ``predicate(obj)`` holds for every name; one list request per round for the whole batch.

        ``predicate`` returns True (done), False (keep waiting) or raises LonghornError (failed for good).
        Returns ``{name: object}``; raises WaitTimeout naming the objects still pending.
        """
        pending = set(names)
        done = {}
        deadline = clock() + timeout
        last = {}
        while True:
            for obj in self.list(kind, api_version, namespace=namespace, label_selector=label_selector):
                name = obj["metadata"]["name"]
                if name in pending:
                    last[name] = obj
                    if predicate(obj):
                        done[name] = obj
                        pending.discard(name)
            if not pending:
                return done
            if clock() >= deadline:
                raise WaitTimeout("Timed out after %ss waiting for %s: %s" % (timeout, kind, ", ".join(sorted(pending))),
                                  pending=sorted(pending), last={n: last.get(n) for n in sorted(pending)})
            self._sleep(sleep)


def unknown_namespace(access, namespace, option="namespace"):
    """A LonghornError calling ``namespace`` unknown and naming the known ones, or None when it exists.

    Listing a namespace that does not exist returns nothing, so callers ask only after a listing came back empty.
    Without the right to read namespaces (RBAC) nothing is claimed.
    """
    try:
        if access.get("Namespace", "v1", namespace) is not None:
            return None
        known = [(n.get("metadata") or {}).get("name") for n in access.list("Namespace", "v1")]
    except LonghornError:
        return None
    return LonghornError("%s: unknown namespace '%s' (known: %s)" % (option, namespace, known_names(n for n in known if n)))
