# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 10, finding 6, table-driven: each check of the modules, module_utils and filters, fed a bad value, refuses
with a message that names the option and the value given, and (where the value is a choice) what is accepted.

Each row: (case, a callable that must raise, the exception type, fragments the message must contain). The role
preflights are run for real in tests/integration/test_validation_messages.py.
"""

from __future__ import annotations

import datetime

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.longhorn_dr.plugins.filter import verify_report as vr
from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state as cs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _k8s
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import K8sAccess, LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import InvalidValue, parse_duration
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import s3_client
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_cluster_state, longhorn_system_backup, longhorn_volume_backup

NS = "longhorn-system"
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
MANIFEST = {"format": vr.CLUSTER_STATE_FORMAT, "exported_at": "2026-12-01T00:00:00Z", "files": {},
            "volumes": [{"volume": "pvc-1", "pvc_namespace": "apps", "pvc_name": "data"}],
            "baselines": [{"name": "rows", "namespace": "db", "pod": "db-0", "command": "true", "stdout": "1", "rc": 0}]}


class Cluster:
    """Namespaces and Longhorn objects as K8sAccess returns them; records writes (there must be none)."""

    def __init__(self, namespaces=("default", "kube-system", NS), objects=None):
        self.namespaces = namespaces
        self.objects = objects or {}
        self.check_mode = False
        self.writes = []

    def get(self, kind, _api_version, name, namespace=None):
        if kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.namespaces else None
        return next((o for o in self.list(kind, None, namespace) if o["metadata"]["name"] == name), None)

    def list(self, kind, _api_version, namespace=None, **_kwargs):
        if kind == "Namespace":
            return [{"metadata": {"name": name}} for name in self.namespaces]
        return list(self.objects.get(kind, [])) if namespace in (None, NS) else []

    def create(self, *args, **kwargs):
        self.writes.append(("create", args))

    merge_patch = delete = create


class Module:
    """What the modules' functions read from an AnsibleK8SModule (and kubernetes.core's get_api_client)."""

    server_side_dry_run = False

    def __init__(self, check_mode=False, **params):
        self.params = params
        self.check_mode = check_mode
        self._diff = False
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def requires(self, *_args, **_kwargs):
        pass


VOLUMES = {"Volume": [{"metadata": {"name": "pvc-a"}, "spec": {}, "status": {"state": "detached"}}]}


def volume_backup(**params):
    options = dict(namespace=NS, volumes=None, label_selector=None, concurrency=5, max_age=None)
    options.update(params)
    cluster = Cluster(objects=VOLUMES)
    longhorn_volume_backup.plan_backups(cluster, options, NOW)
    assert cluster.writes == []


def system_backup(state, **params):
    options = dict(name="nightly", state=state, restore_name=None, volume_backup_policy="if-not-present", keep_remote=False,
                   namespace=NS, wait=False, wait_timeout=10, wait_sleep=1)
    options.update(params)
    cluster = Cluster(objects={"SystemBackup": [{"metadata": {"name": "old"}, "status": {"state": "Ready"}}]})
    longhorn_system_backup.STATE_HANDLERS[state](Module(**options), cluster)
    assert cluster.writes == []


def cluster_state_export(tmp_path, **params):
    options = dict(state="present", namespace=NS, dest=str(tmp_path / "export"), baselines=[], max_age=None, upload=False,
                   upload_prefix="cluster-state/", prefix="", bucket=None, endpoint_url=None)
    options.update(params)
    exporter = longhorn_cluster_state.Exporter(Module(**options), Cluster(objects=VOLUMES), now=NOW, k8s_version="v1.31.0")
    exporter.options()
    exporter.build(exporter.options()[1])


def cluster_state_fetch(tmp_path, **params):
    options = dict(state="fetched", namespace=NS, dest=str(tmp_path / "export"), baselines=[], max_age=None, upload=False,
                   upload_prefix="cluster-state/", prefix="", bucket="b", endpoint_url="http://s3")
    options.update(params)
    longhorn_cluster_state.Fetcher(Module(**options)).options()


def k8s_access(**params):
    K8sAccess(Module(**params))


def kubeconfig_file(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
                    "clusters: [{name: lab, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: lab, user: {token: not-a-secret}}]\n"
                    "contexts: [{name: lab, context: {cluster: lab, user: lab}}, {name: staging, context: {cluster: lab, user: lab}}]\n")
    return str(path)


def a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    return str(path)


CASES = [
    # longhorn_volume_backup
    ("volume_backup max_age", lambda t: volume_backup(max_age="soon"), LonghornError, ["max_age", "'soon'", "Go duration"]),
    ("volume_backup concurrency", lambda t: volume_backup(concurrency=0), LonghornError, ["concurrency", "at least 1", "not 0"]),
    ("volume_backup volumes", lambda t: volume_backup(volumes=["pvc-b"]), LonghornError, ["volumes", "pvc-b", "known: pvc-a"]),
    ("volume_backup namespace", lambda t: volume_backup(namespace="longhorn"), LonghornError,
     ["namespace: unknown namespace 'longhorn'", "known: default, kube-system, longhorn-system"]),
    # longhorn_system_backup
    ("system_backup present namespace", lambda t: system_backup("present", namespace="longhorn"), LonghornError,
     ["namespace: unknown namespace 'longhorn'", "known:", NS]),
    ("system_backup absent namespace", lambda t: system_backup("absent", namespace="longhorn"), LonghornError,
     ["namespace: unknown namespace 'longhorn'", "known:", NS]),
    ("system_backup restored namespace", lambda t: system_backup("restored", namespace="longhorn", name=None), LonghornError,
     ["namespace: unknown namespace 'longhorn'", "known:", NS]),
    ("system_backup restored name", lambda t: system_backup("restored", name="nightly"), LonghornError,
     ["name: SystemBackup nightly not found", "found: old (Ready)"]),
    # longhorn_cluster_state
    ("cluster_state max_age", lambda t: cluster_state_export(t, max_age="soon"), LonghornError, ["max_age", "'soon'", "Go duration"]),
    ("cluster_state baselines not a dict", lambda t: cluster_state_export(t, baselines=["rows"]), LonghornError,
     ["baselines[0]", "'rows'", "a dict with a name"]),
    ("cluster_state baselines name", lambda t: cluster_state_export(t, baselines=[{"name": ""}]), LonghornError,
     ["baselines[0]", "name ''", "unique name"]),
    ("cluster_state baselines twice", lambda t: cluster_state_export(t, baselines=[{"name": "a"}, {"name": "a"}]), LonghornError,
     ["baselines[1]", "'a' is used twice"]),
    ("cluster_state upload_prefix", lambda t: cluster_state_export(t, upload=True, prefix="dr", upload_prefix="dr/backupstore/x"),
     LonghornError, ["upload_prefix 'dr/backupstore/x'", "inside the backupstore 'dr/backupstore/'", "cluster-state/"]),
    ("cluster_state upload_prefix dots", lambda t: cluster_state_export(t, upload=True, upload_prefix="../x"), LonghornError,
     ["upload_prefix '../x'", "'..'", "cluster-state/"]),
    ("cluster_state dest", lambda t: cluster_state_export(t, dest=a_file(t)), LonghornError, ["dest:", "file", "not a directory"]),
    ("cluster_state namespace", lambda t: cluster_state_export(t, namespace="longhorn"), LonghornError,
     ["namespace: unknown namespace 'longhorn'", "known:", NS]),
    ("cluster_state fetched options", lambda t: cluster_state_fetch(t, upload=True, max_age="1h"), LonghornError,
     ["upload=True", "max_age='1h'", "state=present"]),
    ("cluster_state fetched upload_prefix", lambda t: cluster_state_fetch(t, upload_prefix="a/../b"), LonghornError,
     ["upload_prefix 'a/../b'", "'..'"]),
    # _k8s: the connection
    ("kubeconfig missing", lambda t: k8s_access(kubeconfig=str(t / "none" / "config")), LonghornError,
     ["kubeconfig: the file 'config' in %s does not exist" % "{tmp}/none", "K8S_AUTH_KUBECONFIG"]),
    ("kubeconfig a directory", lambda t: k8s_access(kubeconfig=str(t)), LonghornError, ["kubeconfig:", "is not a file"]),
    ("context unknown", lambda t: k8s_access(kubeconfig=kubeconfig_file(t), context="prod"), LonghornError,
     ["context: unknown context 'prod'", "known: lab, staging"]),
    # _longhorn / _s3
    ("parse_duration option", lambda t: parse_duration("soon", option="max_age"), InvalidValue, ["max_age", "'soon'", "Go duration"]),
    ("parse_duration negative", lambda t: parse_duration(-5, option="max_age"), InvalidValue, ["max_age", "-5", "seconds"]),
    ("s3 endpoint_url", lambda t: s3_client({"endpoint_url": "minio 9000", "access_key": "a", "secret_key": "b"}), ValueError,
     ["endpoint_url 'minio 9000'", "http://"]),
    ("s3 region", lambda t: s3_client({"endpoint_url": "http://minio:9000", "access_key": "a", "secret_key": "b", "region": "east!"}),
     ValueError, ["region 'east!'", "us-east-1"]),
    # verify_restore_plan and the other filters, with the role's option_prefix
    ("verify tolerance", lambda t: vr.verify_restore_plan(None, tolerance="5 percent", option_prefix="verify_restore_"), AnsibleFilterError,
     ["verify_restore_tolerance", "'5 percent'", "percentage such as 5%"]),
    ("verify check tolerance", lambda t: vr.verify_restore_plan(None, checks=[{"name": "c", "namespace": "a", "command": "x", "pod": "p",
                                                                               "expect": "1", "tolerance": "lots"}]),
     AnsibleFilterError, ["checks[0] (c): tolerance", "'lots'"]),
    ("verify check pod", lambda t: vr.verify_restore_plan(None, checks=[{"name": "c", "namespace": "a", "command": "x"}]),
     AnsibleFilterError, ["checks[0] (c)", "pod None", "exactly one of pod or label_selector"]),
    ("verify check expect", lambda t: vr.verify_restore_plan(None, checks=[{"name": "c", "namespace": "a", "command": "x", "pod": "p"}]),
     AnsibleFilterError, ["checks[0] (c)", "expect (text) or expect_number"]),
    ("verify check expect_number", lambda t: vr.verify_restore_plan(None, checks=[{"name": "c", "namespace": "a", "command": "x",
                                                                                   "pod": "p", "expect_number": "many"}]),
     AnsibleFilterError, ["checks[0] (c)", "expect_number 'many'", "not a number"]),
    ("verify check fields", lambda t: vr.verify_restore_plan(None, checks=[{"name": "c"}], option_prefix="verify_restore_"), AnsibleFilterError,
     ["verify_restore_checks[0]", "{'name': 'c'}", "name, namespace and command"]),
    ("verify check names", lambda t: vr.verify_restore_plan(MANIFEST, checks=[{"name": "rows", "namespace": "db", "command": "x", "pod": "p",
                                                                               "expect": "1"}]),
     AnsibleFilterError, ["checks", "rows", "unique"]),
    ("verify expected_pvcs", lambda t: vr.verify_restore_plan(None, expected_pvcs=[{"name": "data"}], option_prefix="verify_restore_"),
     AnsibleFilterError, ["verify_restore_expected_pvcs", "{'name': 'data'}", "namespace and name"]),
    ("verify namespaces", lambda t: vr.verify_restore_plan(MANIFEST, namespaces=["shop", "apps"], manifest_location="/dr/manifest.json",
                                                           option_prefix="verify_restore_"),
     AnsibleFilterError, ["verify_restore_namespaces: unknown namespace 'shop'", "/dr/manifest.json", "known: apps, db"]),
    ("restore_app_objects what", lambda t: vr.restore_app_objects([], "volumes", "apps"), AnsibleFilterError,
     ["what", "'volumes'", "mark, retain, claims or pvs"]),
]


@pytest.mark.parametrize("case, call, error, fragments", CASES, ids=[c[0] for c in CASES])
def test_refusal_names_the_option_and_the_value(tmp_path, monkeypatch, case, call, error, fragments):
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG", raising=False)
    monkeypatch.delenv("K8S_AUTH_CONTEXT", raising=False)
    with pytest.raises(error) as info:
        call(tmp_path)
    message = str(info.value)
    missing = [f.replace("{tmp}", str(tmp_path)) for f in fragments if f.replace("{tmp}", str(tmp_path)) not in message]
    assert missing == [], "%s: %r lacks %s" % (case, message, missing)


def test_a_namespace_that_exists_is_not_called_unknown():
    cluster = Cluster()
    assert _k8s.unknown_namespace(cluster, NS) is None
    assert "unknown namespace 'x'" in str(_k8s.unknown_namespace(cluster, "x"))


def test_without_the_right_to_read_namespaces_nothing_is_claimed():
    class Forbidden(Cluster):
        def get(self, kind, _api_version, name, namespace=None):
            raise LonghornError("Failed to get Namespace %s: forbidden" % name, status=403)
    assert _k8s.unknown_namespace(Forbidden(), "x") is None


def test_known_names_are_capped():
    assert _k8s.known_names(["b", "a", "a"]) == "a, b" and _k8s.known_names([]) == "none"
    assert _k8s.known_names("n%02d" % i for i in range(25)).endswith("n19 and 5 more")


def test_cluster_state_upload_prefix_outside_the_backupstore_is_accepted():
    assert cs.check_upload_prefix("cluster-state", "dr/backupstore/") == "cluster-state/"
