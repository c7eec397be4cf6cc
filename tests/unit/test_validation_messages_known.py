# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 10, finding 6: a missing kubeconfig names its path, an unknown namespace is called unknown."""

from __future__ import annotations

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import K8sAccess, LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_volume_backup


class ParamsModule:
    """What kubernetes.core's get_api_client reads from an AnsibleK8SModule."""

    check_mode = False
    server_side_dry_run = False

    def __init__(self, **params):
        self.params = params

    def requires(self, *_args, **_kwargs):
        pass


def test_a_missing_kubeconfig_is_named_with_its_path(tmp_path, monkeypatch):
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG", raising=False)
    missing = tmp_path / "nowhere" / "kubeconfig"
    with pytest.raises(LonghornError) as info:
        K8sAccess(ParamsModule(kubeconfig=str(missing)))
    # Named by file and directory: Ansible masks the value of kubeconfig (no_log in kubernetes.core) in results.
    assert "kubeconfig: the file 'kubeconfig' in %s does not exist" % missing.parent in str(info.value)


class NamespacedLonghorn:
    """A cluster with namespaces ``existing``; Longhorn objects only in longhorn-system."""

    def __init__(self, existing=("default", "kube-system", "longhorn-system")):
        self.existing = existing

    def list(self, kind, _api_version, namespace=None, label_selector=None):
        if kind == "Namespace":
            return [{"metadata": {"name": name}} for name in self.existing]
        return []

    def get(self, kind, _api_version, name, namespace=None):
        if kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.existing else None
        return None


def test_an_unknown_namespace_is_called_unknown():
    params = dict(namespace="longhorn", volumes=None, label_selector=None, concurrency=5, max_age=None)
    with pytest.raises(LonghornError) as info:
        longhorn_volume_backup.plan_backups(NamespacedLonghorn(), params, now=None)
    assert "namespace: unknown namespace 'longhorn' (known: default, kube-system, longhorn-system)" in str(info.value)
