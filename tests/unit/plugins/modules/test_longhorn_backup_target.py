# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_backup_target and its _backup_target helpers, with a fake cluster."""

from __future__ import annotations

import base64
import copy
import datetime
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backup_target as bt
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError, WaitTimeout
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_backup_target as module_under_test

NS = "longhorn-system"
URL = "s3://backups@us-east-1/"
EMPTY_SPEC = {"backupTargetURL": "", "credentialSecret": "", "pollInterval": "5m0s"}
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=datetime.timezone.utc)


class FakeAccess:
    """Objects keyed by (kind, name); records writes; a dry run in check mode changes nothing."""

    def __init__(self, objects, check_mode=False, on_wait=None, fail_on=None):
        self.objects = copy.deepcopy(objects)
        self.check_mode = check_mode
        self.writes = []
        self.on_wait = on_wait
        self.fail_on = fail_on

    def get(self, kind, _api_version, name, namespace=None):
        assert namespace == NS
        return copy.deepcopy(self.objects.get((kind, name)))

    def create(self, kind, _api_version, body, namespace=None):
        self.writes.append(("create", kind, body["metadata"]["name"], body, self.check_mode))
        if not self.check_mode:
            self.objects[(kind, body["metadata"]["name"])] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def merge_patch(self, kind, _api_version, name, patch, namespace=None):
        self.writes.append(("patch", kind, name, patch, self.check_mode))
        if self.fail_on and self.fail_on(("patch", kind, name)):
            raise LonghornError("Failed to patch %s %s: admission webhook denied the request" % (kind, name))
        merged = copy.deepcopy(self.objects[(kind, name)])
        for key, value in patch.items():
            if isinstance(value, dict):
                section = merged.setdefault(key, {})
                for inner, inner_value in value.items():
                    if inner_value is None:  # JSON merge patch: null removes the field
                        section.pop(inner, None)
                    else:
                        section[inner] = inner_value
            else:
                merged[key] = value
        if not self.check_mode:
            self.objects[(kind, name)] = merged
        return copy.deepcopy(merged)

    def delete(self, kind, _api_version, name, namespace=None):
        self.writes.append(("delete", kind, name, None, self.check_mode))
        if not self.check_mode:
            self.objects.pop((kind, name), None)

    def wait_for(self, kind, _api_version, names, predicate, namespace=None, timeout=600, sleep=2):
        if self.on_wait:
            self.on_wait(self)
        obj = self.objects[(kind, names[0])]
        if predicate(obj):
            return {names[0]: obj}
        raise WaitTimeout("timeout", pending=names, last={names[0]: obj})

    def real_writes(self):
        return [w for w in self.writes if not w[4]]


class FakeModule:
    def __init__(self, check_mode=False, diff=True, **params):
        self.params = dict(name="default", namespace=NS, state="present", url=None, credential_secret=None, access_key=None,
                           secret_key=None, endpoints=None, cert=None, virtual_hosted_style=None, poll_interval=None,
                           sync=False, wait=True, wait_timeout=10, wait_sleep=1, validate_target=True)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff


def cluster(version="v1.10.2", spec=None, status=None, configmap=""):
    objects = {
        ("Setting", "current-longhorn-version"): {"metadata": {"name": "current-longhorn-version"}, "value": version},
        ("ConfigMap", "longhorn-default-resource"): {"metadata": {"name": "longhorn-default-resource"},
                                                     "data": {"default-resource.yaml": configmap}},
        ("BackupTarget", "default"): {"metadata": {"name": "default", "namespace": NS},
                                      "spec": spec if spec is not None else dict(EMPTY_SPEC),
                                      "status": status or {"available": False}},
    }
    if version.startswith("v1.7"):
        for name, value in (("backup-target", ""), ("backup-target-credential-secret", ""), ("backupstore-poll-interval", "300")):
            objects[("Setting", name)] = {"metadata": {"name": name}, "value": value}
    return objects


def synced(access):
    """What Longhorn does after the change: available, and a sync a second later."""
    target = access.objects[("BackupTarget", "default")]
    target["status"] = {"available": True, "lastSyncedAt": "2026-01-02T03:04:06Z",
                        "conditions": [{"type": "Unavailable", "status": "False", "message": ""}]}


class FakeS3:
    """A boto3 S3 client stand-in: records the client params and listings; ``error`` is raised by the listing."""

    def __init__(self, error=None):
        self.error = error
        self.clients = []
        self.listings = []

    def __call__(self, params, **kwargs):
        self.clients.append(dict(params, **kwargs))
        if params.get("ca_bundle"):
            with open(params["ca_bundle"], encoding="utf-8") as stream:
                self.clients[-1]["ca_text"] = stream.read()
        return self

    def list_objects_v2(self, **kwargs):
        self.listings.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"KeyCount": 0, "IsTruncated": False}


def run(access, module, clock=NOW.timestamp, s3=None):
    return module_under_test.BackupTargetManager(module, access, clock=clock, s3_factory=s3 or FakeS3(),
                                                 s3_sleep=lambda _seconds: None).run()


def creds(**extra):
    params = dict(url=URL, credential_secret="creds", access_key=" AKIA123\n", secret_key="s3cr3t-value\n", endpoints="http://minio:9000")
    params.update(extra)
    return params


# --- helpers ---------------------------------------------------------------------------------------

def test_secret_values_are_trimmed_and_bool_is_text():
    values = bt.secret_values({"access_key": " a ", "secret_key": "b\n", "cert": "-----BEGIN-----\nx\n-----END-----\n",
                               "virtual_hosted_style": False, "endpoints": None})
    assert values == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_CERT": "-----BEGIN-----\nx\n-----END-----",
                      "VIRTUAL_HOSTED_STYLE": "false"}


def test_target_view_normalizes_interval_and_empty_fields():
    assert bt.target_view({"pollInterval": "300s"}) == bt.target_view({"pollInterval": "5m0s", "credentialSecret": ""})
    assert bt.target_view({"pollInterval": "5m0s", "syncRequestedAt": "2026-01-01T00:00:00Z"})["pollInterval"] == 300.0


def test_spec_and_settings_patches_only_carry_differences():
    current = bt.target_view({"backupTargetURL": URL, "pollInterval": "5m0s"})
    desired = bt.desired_view(current, url=URL, poll_seconds=600.0)
    assert bt.spec_patch(current, desired) == {"pollInterval": "10m0s"}
    assert bt.settings_patch(current, desired) == {"backupstore-poll-interval": "600"}
    assert bt.spec_patch(current, bt.desired_view(current, poll_seconds=300.0)) == {}


def test_configmap_backup_keys():
    import yaml
    configmap = {"data": {"default-resource.yaml": "backup-target: s3://a@b/\nbackupstore-poll-interval: ''\nother: 1\n"}}
    assert bt.configmap_backup_keys(configmap, yaml.safe_load) == ["backup-target"]
    assert bt.configmap_backup_keys({"data": {"default-resource.yaml": ""}}, yaml.safe_load) == []
    assert bt.configmap_backup_keys({"data": {"default-resource.yaml": "[: bad"}}, yaml.safe_load) == []


def test_is_ready_needs_a_sync_newer_than_the_change():
    target = {"status": {"available": True, "lastSyncedAt": "2026-01-02T03:04:05Z"}}
    assert bt.is_ready(target) is True
    assert bt.is_ready(target, NOW, previous_synced=None) is True  # same second as the change: floored
    assert bt.is_ready(target, NOW, previous_synced="2026-01-02T03:04:05Z") is False
    assert bt.is_ready(target, NOW + datetime.timedelta(seconds=2)) is False
    assert bt.is_ready({"status": {"available": False, "lastSyncedAt": "2026-01-02T03:04:09Z"}}) is False
    assert bt.is_ready({"status": {"available": True}}) is False


def test_parse_time_accepts_fractions():
    assert bt.parse_time("2026-01-02T03:04:05.123456789Z") == datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    assert bt.parse_time("") is None and bt.parse_time("garbage") is None


# --- the manager -----------------------------------------------------------------------------------

def test_check_mode_writes_nothing_for_real_and_masks_the_diff():
    access = FakeAccess(cluster(), check_mode=True)
    result = run(access, FakeModule(check_mode=True, **creds()))
    assert result["changed"] is True
    assert access.real_writes() == []
    assert result["diff"]["after"]["secret"] == {"name": "creds", "data": {
        "AWS_ACCESS_KEY_ID": "******** (changed)", "AWS_ENDPOINTS": "******** (changed)", "AWS_SECRET_ACCESS_KEY": "******** (changed)"}}
    assert result["diff"]["after"]["target"] == {"backupTargetURL": URL, "credentialSecret": "creds", "pollInterval": "5m0s"}
    assert "s3cr3t-value" not in json.dumps(result) and "AKIA123" not in json.dumps(result)


def test_apply_then_rerun_is_idempotent_and_poll_forms_compare_equal():
    access = FakeAccess(cluster(), on_wait=synced)
    first = run(access, FakeModule(poll_interval=300, **creds()))
    assert first["changed"] is True
    secret = access.objects[("Secret", "creds")]
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "s3cr3t-value"
    assert base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIA123"
    assert access.objects[("BackupTarget", "default")]["spec"]["credentialSecret"] == "creds"
    assert "s3cr3t-value" not in json.dumps(first)

    writes = len(access.writes)
    second = run(access, FakeModule(poll_interval="5m0s", **creds()))
    assert second["changed"] is False
    assert len(access.writes) == writes
    assert "diff" not in second


def test_changed_secret_only_requests_a_sync():
    objects = cluster(spec={"backupTargetURL": URL, "credentialSecret": "creds", "pollInterval": "5m0s"})
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(
        {"AWS_ACCESS_KEY_ID": "AKIA123", "AWS_SECRET_ACCESS_KEY": "old", "AWS_ENDPOINTS": "http://minio:9000"})}
    access = FakeAccess(objects, on_wait=synced)
    result = run(access, FakeModule(**creds()))
    assert result["changed"] is True and result["sync_requested"] is True
    assert result["secret_changed_keys"] == ["AWS_SECRET_ACCESS_KEY"]
    assert result["diff"]["before"]["secret"]["data"]["AWS_SECRET_ACCESS_KEY"] == "********"
    assert [w[:3] for w in access.writes] == [("patch", "Secret", "creds"), ("patch", "BackupTarget", "default")]
    assert access.objects[("BackupTarget", "default")]["spec"]["syncRequestedAt"] == "2026-01-02T03:04:05Z"


def test_sync_true_always_changes():
    objects = cluster(spec={"backupTargetURL": URL, "credentialSecret": "", "pollInterval": "5m0s"},
                      status={"available": True, "lastSyncedAt": "2026-01-02T03:00:00Z"})
    access = FakeAccess(objects, on_wait=synced)
    result = run(access, FakeModule(sync=True))
    assert result["changed"] is True and result["sync_requested"] is True


def test_wait_timeout_reports_the_unavailable_message():
    def unavailable(access):
        access.objects[("BackupTarget", "default")]["status"] = {"available": False, "conditions": [
            {"type": "Unavailable", "status": "True", "reason": "Unavailable", "message": "failed to list system backups: AccessDenied"}]}
    access = FakeAccess(cluster(), on_wait=unavailable)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds()))
    assert "Timed out after 10s waiting for BackupTarget default" in str(caught.value)
    assert "AccessDenied" in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value) and "s3cr3t-value" not in json.dumps(caught.value.details)


@pytest.mark.parametrize("url", ["s3://backups/", "s3://backups@us-east-1/path", "ftp://x/"])
def test_bad_url_fails_before_any_request(url):
    access = FakeAccess({})  # any get would raise KeyError-free None; writes are what matter
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds(url=url)))
    assert url in str(caught.value)
    assert access.writes == []


def test_bad_poll_interval_fails():
    access = FakeAccess(cluster())
    with pytest.raises(LonghornError, match="invalid poll interval 'soon'"):
        run(access, FakeModule(url=URL, poll_interval="soon"))
    assert access.writes == []


def test_legacy_versions_write_settings():
    access = FakeAccess(cluster(version="v1.7.2"), on_wait=synced)
    result = run(access, FakeModule(poll_interval="10m", **creds()))
    assert result["legacy_settings"] is True and result["changed"] is True
    assert access.objects[("Setting", "backup-target")]["value"] == URL
    assert access.objects[("Setting", "backup-target-credential-secret")]["value"] == "creds"
    assert access.objects[("Setting", "backupstore-poll-interval")]["value"] == "600"
    assert not [w for w in access.writes if w[1] == "BackupTarget"]


def test_legacy_versions_refuse_named_targets():
    with pytest.raises(LonghornError, match="need 1.8 or later"):
        run(FakeAccess(cluster(version="v1.7.2")), FakeModule(name="other", url=URL))


def test_configmap_keys_give_a_warning():
    access = FakeAccess(cluster(configmap="backup-target: s3://x@y/\n"), on_wait=synced)
    manager = module_under_test.BackupTargetManager(FakeModule(url=URL, validate_target=False), access, clock=NOW.timestamp)
    manager.run()
    assert any("longhorn-default-resource" in warning and "backup-target" in warning for warning in manager.warnings)
    assert any("validate_target=false" in warning and URL in warning for warning in manager.warnings)


def test_absent_clears_default_and_deletes_named():
    objects = cluster(spec={"backupTargetURL": URL, "credentialSecret": "creds", "pollInterval": "5m0s"})
    objects[("BackupTarget", "other")] = {"metadata": {"name": "other"}, "spec": {"backupTargetURL": "nfs://nas:/x"}}
    access = FakeAccess(objects)
    result = run(access, FakeModule(state="absent"))
    assert result["changed"] is True
    assert access.objects[("BackupTarget", "default")]["spec"]["backupTargetURL"] == ""
    assert run(access, FakeModule(state="absent"))["changed"] is False
    assert run(access, FakeModule(state="absent", name="other"))["changed"] is True
    assert ("BackupTarget", "other") not in access.objects
    assert run(access, FakeModule(state="absent", name="other"))["changed"] is False


def test_new_named_target_polls_every_300s():
    access = FakeAccess(cluster())
    run(access, FakeModule(name="second", url="nfs://nas:/export", wait=False))
    expected = {"backupTargetURL": "nfs://nas:/export", "credentialSecret": "", "pollInterval": "5m0s"}
    assert access.objects[("BackupTarget", "second")]["spec"] == expected


# --- argument spec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    ({"access_key": "AKIAEXAMPLEKEY", "secret_key": "ExampleSecretValue"}, "credential_secret"),
    ({"credential_secret": "creds", "access_key": "AKIAEXAMPLEKEY"}, "secret_key"),
    ({"state": "gone"}, "state"),
    ({"wait_timeout": "soon"}, "wait_timeout"),
])
def test_argspec_errors(args, words, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module_under_test.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] is True
    assert words in out["msg"]
    assert "ExampleSecretValue" not in json.dumps(out)


def test_a_changed_target_asks_for_a_sync_so_the_wait_does_not_take_a_poll_interval():
    objects = cluster(spec={"backupTargetURL": "s3://old@us-east-1/", "credentialSecret": "creds", "pollInterval": "5m0s"})
    access = FakeAccess(objects, on_wait=synced)
    result = run(access, FakeModule(**creds()))
    assert result["changed"] is True and result["sync_requested"] is True
    assert access.objects[("BackupTarget", "default")]["spec"]["syncRequestedAt"] == "2026-01-02T03:04:05Z"


# --- changed tells the truth after a write (issue 10 finding 4) --------------------------------------

def unavailable(access, message="failed to list system backups in s3://backups@us-east-1/: AccessDenied"):
    target = access.objects.get(("BackupTarget", "default"))
    if target is not None and target["spec"].get("backupTargetURL") == URL:
        target["status"] = {"available": False, "conditions": [
            {"type": "Unavailable", "status": "True", "reason": "Unavailable", "message": message}]}
    elif target is not None:
        target["status"] = {"available": True, "lastSyncedAt": "2026-01-02T03:04:06Z"}


def run_main(monkeypatch, capsys, access, args):
    monkeypatch.setattr(module_under_test, "K8sAccess", lambda _module: access)
    monkeypatch.setattr(module_under_test, "s3_client", FakeS3(), raising=False)
    with patch_module_args(dict(args, wait_timeout=1, wait_sleep=1)):
        with pytest.raises(SystemExit):
            module_under_test.main()
    return json.loads(capsys.readouterr().out)


def test_a_failed_wait_after_writing_reports_changed(monkeypatch, capsys):
    access = FakeAccess(cluster(), on_wait=unavailable)
    out = run_main(monkeypatch, capsys, access, creds())
    assert out["failed"] is True and "AccessDenied" in out["msg"]
    assert access.real_writes(), "the run wrote nothing, the test proves nothing"
    assert out["changed"] is True


def test_a_refused_target_write_after_the_secret_write_reports_changed(monkeypatch, capsys):
    objects = cluster(spec={"backupTargetURL": "s3://old@us-east-1/", "credentialSecret": "creds", "pollInterval": "5m0s"})
    access = FakeAccess(objects, on_wait=synced, fail_on=lambda call: call[1] == "BackupTarget" and call[0] == "patch")
    out = run_main(monkeypatch, capsys, access, creds())
    assert out["failed"] is True and "admission webhook denied" in out["msg"]
    assert [w[1] for w in access.real_writes()][:1] == ["Secret"]
    assert out["changed"] is True


def test_a_failure_in_check_mode_reports_no_change(monkeypatch, capsys):
    access = FakeAccess(cluster(), check_mode=True, fail_on=lambda call: call[1] == "BackupTarget")
    monkeypatch.setattr(module_under_test, "K8sAccess", lambda _module: access)
    monkeypatch.setattr(module_under_test, "s3_client", FakeS3(), raising=False)
    with patch_module_args(dict(creds(), _ansible_check_mode=True, url="s3://backups@us-east-1/other/", name="default")):
        with pytest.raises(SystemExit):
            module_under_test.main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False
    assert access.real_writes() == []


# --- check before writing ------------------------------------------------------------------------

def s3_error(code, status, message=""):
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2")


def unreachable_error():
    from botocore.exceptions import EndpointConnectionError  # pylint: disable=import-outside-toplevel
    return EndpointConnectionError(endpoint_url="http://minio:9000/backups")


REFUSALS = [
    (lambda: s3_error("InvalidAccessKeyId", 403, "The Access Key Id you provided does not exist in our records."), "credentials",
     ["access_key:", "InvalidAccessKeyId", "'http://minio:9000'", "Secret 'creds'"]),
    (lambda: s3_error("SignatureDoesNotMatch", 403), "credentials", ["secret_key:", "SignatureDoesNotMatch", "'http://minio:9000'"]),
    (lambda: s3_error("NoSuchBucket", 404, "The specified bucket does not exist"), "missing_bucket",
     ["url 's3://backups@us-east-1/'", "bucket 'backups' does not exist", "NoSuchBucket"]),
    (lambda: s3_error("AuthorizationHeaderMalformed", 400,
                      "The authorization header is malformed; the region is wrong; expecting 'eu-central-1'."), "region",
     ["url 's3://backups@us-east-1/'", "region 'us-east-1'", "expecting 'eu-central-1'", "AuthorizationHeaderMalformed"]),
    (unreachable_error, "unreachable", ["endpoints 'http://minio:9000'", "unreachable", "validate_target=false"]),
    (lambda: s3_error("AccessDenied", 403), "denied", ["may not list backupstore/ in bucket 'backups'", "AccessDenied"]),
]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("make_error, kind, words", REFUSALS, ids=[r[1] + "-" + str(i) for i, r in enumerate(REFUSALS)])
def test_a_bad_new_target_is_refused_before_any_write(make_error, kind, words, check_mode):
    objects = cluster(spec={"backupTargetURL": "s3://old@us-east-1/", "credentialSecret": "creds", "pollInterval": "5m0s"})
    access = FakeAccess(objects, check_mode=check_mode, on_wait=synced)
    s3 = FakeS3(make_error())
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(check_mode=check_mode, **creds()), s3=s3)
    message = str(caught.value)
    assert message.startswith("The new backup target was not written: ")
    for word in words:
        assert word in message, (word, message)
    assert caught.value.details["target_check"]["error_kind"] == kind
    assert access.writes == []  # not even a dry run
    assert "s3cr3t-value" not in message and "AKIA123" not in message
    assert s3.listings and s3.listings[0]["Prefix"] == "backupstore/"


def test_the_check_uses_what_the_secret_will_hold_and_longhorns_addressing():
    objects = cluster()
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(
        {"AWS_ACCESS_KEY_ID": "AKIAOLD", "AWS_SECRET_ACCESS_KEY": "old-secret", "AWS_ENDPOINTS": "https://minio:9000",
         "AWS_CERT": "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----"})}
    s3 = FakeS3()
    result = run(FakeAccess(objects, on_wait=synced),
                 FakeModule(url="s3://backups@eu-central-1/cluster-a/", credential_secret="creds", access_key="AKIANEW",
                            secret_key="new-secret"), s3=s3)
    client = s3.clients[0]
    assert client["access_key"] == "AKIANEW" and client["secret_key"] == "new-secret"  # new values over the old Secret
    assert client["endpoint_url"] == "https://minio:9000" and client["region"] == "eu-central-1"
    assert client["addressing_style"] == "path"
    assert client["ca_text"] == "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    assert not __import__("os").path.exists(client["ca_bundle"])  # the CA file does not outlive the check
    assert s3.listings == [{"Bucket": "backups", "Prefix": "cluster-a/backupstore/", "Delimiter": "/", "MaxKeys": 1}]
    assert result["target_check"]["performed"] is True and result["target_check"]["prefix"] == "cluster-a/backupstore/"

    virtual = FakeS3()
    run(FakeAccess(cluster(), on_wait=synced), FakeModule(**creds(virtual_hosted_style=True)), s3=virtual)
    assert virtual.clients[0]["addressing_style"] == "virtual"


def test_check_mode_runs_the_check():
    s3 = FakeS3()
    result = run(FakeAccess(cluster(), check_mode=True), FakeModule(check_mode=True, **creds()), s3=s3)
    assert result["changed"] is True and result["target_check"]["performed"] is True and len(s3.listings) == 1


def test_an_unchanged_target_is_not_checked_again():
    access = FakeAccess(cluster(), on_wait=synced)
    run(access, FakeModule(**creds()))
    s3 = FakeS3(s3_error("InvalidAccessKeyId", 403))  # would refuse, but nothing about the target changes
    result = run(access, FakeModule(poll_interval="10m", wait=False, **creds()), s3=s3)
    assert result["changed"] is True and s3.listings == [] and result["target_check"]["skipped_reason"] == "the target does not change"


def test_validate_target_false_skips_the_check_with_a_warning():
    s3 = FakeS3(s3_error("InvalidAccessKeyId", 403))
    access = FakeAccess(cluster(), on_wait=synced)
    manager = module_under_test.BackupTargetManager(FakeModule(validate_target=False, **creds()), access, clock=NOW.timestamp,
                                                    s3_factory=s3)
    result = manager.run()
    assert result["changed"] is True and s3.clients == []
    assert result["target_check"] == dict(performed=False, skipped_reason="validate_target=false", url=URL, region=None,
                                          endpoint=None, prefix=None, addressing_style=None)
    assert any(warning.startswith("validate_target=false: the new target %s was not checked" % URL) for warning in manager.warnings)


def test_a_secret_without_keys_is_refused():
    access = FakeAccess(cluster())
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(url=URL, credential_secret="made-elsewhere"))
    assert "credential Secret 'made-elsewhere' would have no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in str(caught.value)
    assert access.writes == []


def test_nfs_targets_are_written_with_a_warning():
    s3 = FakeS3()
    manager = module_under_test.BackupTargetManager(FakeModule(name="nas", url="nfs://nas:/export", wait=False),
                                                    FakeAccess(cluster()), clock=NOW.timestamp, s3_factory=s3)
    assert manager.run()["target_check"]["skipped_reason"] == "only s3 targets are checked before writing"
    assert s3.clients == [] and any("nfs target nfs://nas:/export cannot be checked" in w for w in manager.warnings)


# --- rollback --------------------------------------------------------------------------------------

WORKING = {"backupTargetURL": "s3://working@us-east-1/", "credentialSecret": "creds", "pollInterval": "10m0s",
           "syncRequestedAt": "2026-01-01T00:00:00Z"}
WORKING_SECRET = {"AWS_ACCESS_KEY_ID": "AKIAWORKING", "AWS_SECRET_ACCESS_KEY": "working-secret"}


def test_an_unavailable_new_target_gives_back_the_working_one_exactly():
    objects = cluster(spec=dict(WORKING), status={"available": True, "lastSyncedAt": "2026-01-02T03:00:00Z"})
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(WORKING_SECRET)}
    before = copy.deepcopy(objects)
    access = FakeAccess(objects, on_wait=unavailable)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds()))
    message = str(caught.value)
    assert message.startswith("Timed out after 10s waiting for BackupTarget default")
    assert "failed to list system backups in s3://backups@us-east-1/: AccessDenied" in message
    assert "Rolled back: restored Secret creds data (AWS_ACCESS_KEY_ID, AWS_ENDPOINTS, AWS_SECRET_ACCESS_KEY)" in message
    assert "BackupTarget default spec (backupTargetURL) to their values before this run" in message
    assert "The previous target is available again." in message
    # Exactly as before: Secret data (the added AWS_ENDPOINTS removed), and the spec fields (syncRequestedAt: a new request).
    assert access.objects[("Secret", "creds")]["data"] == before[("Secret", "creds")]["data"]
    spec = access.objects[("BackupTarget", "default")]["spec"]
    assert {k: v for k, v in spec.items() if k != "syncRequestedAt"} == {k: v for k, v in WORKING.items() if k != "syncRequestedAt"}
    assert spec["syncRequestedAt"] == "2026-01-02T03:04:05Z"
    assert caught.value.details["target_check"]["performed"] is True
    rollback = caught.value.details["rollback"]
    assert rollback["error"] is None and rollback["previous_available"] is True and rollback["removed"] == []
    assert "s3cr3t-value" not in message and "working-secret" not in json.dumps(caught.value.details)


def test_with_no_previous_target_what_the_run_created_is_removed():
    access = FakeAccess(cluster(), on_wait=lambda a: None)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(name="offsite", **creds()))
    assert ("BackupTarget", "offsite") not in access.objects and ("Secret", "creds") not in access.objects
    assert "removed what this run created (BackupTarget offsite; Secret creds; the bucket is untouched)" in str(caught.value)
    assert [w[:3] for w in access.real_writes()][-2:] == [("delete", "BackupTarget", "offsite"), ("delete", "Secret", "creds")]
    # The default target with an empty URL is given back its empty URL, which Longhorn treats as no target.
    access = FakeAccess(cluster(), on_wait=unavailable)
    with pytest.raises(LonghornError):
        run(access, FakeModule(**creds()))
    assert access.objects[("BackupTarget", "default")]["spec"]["backupTargetURL"] == ""
    assert ("Secret", "creds") not in access.objects


def test_a_refused_target_write_gives_back_the_secret():
    objects = cluster(spec=dict(WORKING))
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(WORKING_SECRET)}
    calls = []

    def fail_first_target_patch(call):
        calls.append(call)
        return call[1] == "BackupTarget" and len([c for c in calls if c[1] == "BackupTarget"]) == 1

    access = FakeAccess(objects, on_wait=synced, fail_on=fail_first_target_patch)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds()))
    assert "admission webhook denied" in str(caught.value) and "Rolled back" in str(caught.value)
    assert access.objects[("Secret", "creds")]["data"] == objects[("Secret", "creds")]["data"]


def test_a_failed_rollback_says_so():
    objects = cluster(spec=dict(WORKING))
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(WORKING_SECRET)}
    secret_writes = []

    def fail_the_second_secret_write(call):
        if call[1] == "Secret":
            secret_writes.append(call)
        return len(secret_writes) > 1

    access = FakeAccess(objects, on_wait=unavailable, fail_on=fail_the_second_secret_write)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds()))
    assert "The rollback failed (Failed to patch Secret creds" in str(caught.value)
    assert "Check the credential Secret and the BackupTarget by hand" in str(caught.value)


def test_legacy_settings_are_rolled_back():
    objects = cluster(version="v1.7.2")
    objects[("Setting", "backup-target")]["value"] = "s3://working@us-east-1/"
    objects[("Setting", "backup-target-credential-secret")]["value"] = "creds"
    objects[("BackupTarget", "default")]["spec"] = {"backupTargetURL": "s3://working@us-east-1/", "credentialSecret": "creds"}
    objects[("Secret", "creds")] = {"metadata": {"name": "creds"}, "data": bt.encode_secret_data(WORKING_SECRET)}

    def longhorn_copies_the_settings(fake):
        # ref §1.2: up to v1.7 Longhorn derives BackupTarget default from the Settings.
        fake.objects[("BackupTarget", "default")]["spec"]["backupTargetURL"] = fake.objects[("Setting", "backup-target")]["value"]
        unavailable(fake)

    access = FakeAccess(objects, on_wait=longhorn_copies_the_settings)
    with pytest.raises(LonghornError) as caught:
        run(access, FakeModule(**creds()))
    assert access.objects[("Setting", "backup-target")]["value"] == "s3://working@us-east-1/"
    assert access.objects[("Setting", "backup-target-credential-secret")]["value"] == "creds"
    assert access.objects[("Secret", "creds")]["data"] == objects[("Secret", "creds")]["data"]
    assert "Setting backup-target" in str(caught.value)


class RacedAccess(FakeAccess):
    """Another run creates the Secret between this run's read and its create (the API answers 409)."""

    def __init__(self, objects, other_values, **kwargs):
        super().__init__(objects, **kwargs)
        self.other_values = other_values

    def create(self, kind, _api_version, body, namespace=None):
        if kind == "Secret" and (kind, body["metadata"]["name"]) not in self.objects:
            self.objects[(kind, body["metadata"]["name"])] = {"metadata": {"name": body["metadata"]["name"]},
                                                              "data": bt.encode_secret_data(self.other_values)}
            self.writes.append(("create-refused", kind, body["metadata"]["name"], None, self.check_mode))
            raise LonghornError('Failed to create Secret %s: secrets "%s" already exists' % ((body["metadata"]["name"],) * 2), status=409)
        return super().create(kind, _api_version, body, namespace=namespace)


def test_a_secret_created_by_a_concurrent_run_is_taken_over_not_a_failure():
    other = {"AWS_ACCESS_KEY_ID": "AKIA123", "AWS_SECRET_ACCESS_KEY": "other-value", "AWS_ENDPOINTS": "http://minio:9000"}
    access = RacedAccess(cluster(), other, on_wait=synced)
    result = run(access, FakeModule(**creds()))
    assert result["changed"] is True
    # Only the key that differs is patched; the Secret is not ours to roll back or delete.
    assert [w[:3] for w in access.writes][:2] == [("create-refused", "Secret", "creds"), ("patch", "Secret", "creds")]
    assert access.writes[1][3] == {"data": bt.encode_secret_data({"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"})}
    secret = access.objects[("Secret", "creds")]
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "s3cr3t-value"
    assert "delete" not in [w[0] for w in access.writes]
    assert "s3cr3t-value" not in json.dumps(result) and "other-value" not in json.dumps(result)


def test_other_create_failures_still_fail():
    access = RacedAccess(cluster(), {}, on_wait=synced)

    def refused(kind, _api_version, body, namespace=None):
        raise LonghornError("Failed to create Secret creds: forbidden", status=403)

    access.create = refused
    with pytest.raises(LonghornError, match="forbidden"):
        run(access, FakeModule(**creds()))
