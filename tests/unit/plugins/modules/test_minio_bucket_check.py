# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""minio_bucket_check as a module: docs against argspec, option errors, fail_on, check mode, secrets.

main() runs in-process (ansible-core's patch_module_args) against the lab's S3 server.
"""

from __future__ import annotations

import datetime
import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.longhorn_dr.plugins.doc_fragments import _s3_connection
from ansible_collections.homelab.longhorn_dr.plugins.modules import minio_bucket_check as module

from tests.lab.longhorn.backupstore import BackupStore
from tests.lab.s3 import S3Server

BLOCK = 2 * 1024 * 1024
WRONG_SECRET = "not-the-secret-0123456789abcdefghij"


def run(capsys, args, check_mode=False):
    """main() with ``args``; returns the parsed JSON result (``failed`` set on fail_json)."""
    module_args = dict(args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            module.main()
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    result["_raw"] = captured.out + captured.err
    # In a controller process (pytest) AnsibleModule.warn() goes to Display, i.e. stderr.
    result["_warnings"] = " | ".join(result.get("warnings", [])) + captured.err
    return result


# ---- documentation against the argspec -------------------------------------------------------


def documented_options():
    options = dict(yaml.safe_load(_s3_connection.ModuleDocFragment.DOCUMENTATION)["options"])
    options.update(yaml.safe_load(module.DOCUMENTATION)["options"])
    return options


def test_argspec_matches_the_documentation():
    spec = module.argument_spec()
    docs = documented_options()
    assert sorted(spec) == sorted(docs)
    for name, option in spec.items():
        doc = docs[name]
        assert doc["type"] == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert sorted(doc.get("aliases", [])) == sorted(option.get("aliases", [])), name
        assert bool(doc.get("required")) == bool(option.get("required")), name


def test_secret_options_are_no_log():
    spec = module.argument_spec()
    assert spec["secret_key"]["no_log"] is True
    assert spec["session_token"]["no_log"] is True
    assert spec["access_key"]["no_log"] is True  # the key ID counts as a credential value (secret scan)


def test_examples_and_return_are_yaml():
    examples = yaml.safe_load(module.EXAMPLES)
    assert all(task["name"][0].isupper() for task in examples)
    returned = yaml.safe_load(module.RETURN)
    assert {"access", "volumes", "problems", "system_backups", "integrity", "stale", "missing", "capacity",
            "findings", "write_probe", "bucket_settings"} <= set(returned)


# ---- option errors (no S3 needed) ------------------------------------------------------------

BASE = {"endpoint_url": "http://127.0.0.1:9", "access_key": "AKIAEXAMPLE", "secret_key": WRONG_SECRET, "bucket": "b"}


@pytest.mark.parametrize("options, message", [
    ({"max_age": "2 days"}, "max_age: invalid duration '2 days'"),
    ({"max_age": "-1h"}, "max_age: invalid duration '-1h'"),
    ({"max_age": 0}, "max_age: 0 is not a positive duration"),
    ({"integrity_sample_percent": 0}, "integrity_sample_percent: 0 is not between 1 and 100"),
    ({"integrity_sample_percent": 101}, "integrity_sample_percent: 101 is not between 1 and 100"),
    ({"concurrency": 0}, "concurrency: 0 is not a positive number"),
    ({"capacity_retained_backups": 0}, "capacity_retained_backups: 0 is not a positive number"),
    ({"capacity_compression_ratio": 0.0}, "capacity_compression_ratio: 0.0 is not a ratio"),
    ({"fail_on": ["stale", "often"]}, "fail_on"),
    ({"integrity": "deep"}, "integrity"),
])
def test_bad_options_fail_with_the_value_named(capsys, options, message):
    result = run(capsys, dict(BASE, **options))
    assert result["failed"] is True
    assert message in result["msg"]
    assert WRONG_SECRET not in result["_raw"]


def test_missing_boto3(capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_BOTO3", False)
    monkeypatch.setattr(module, "BOTO3_IMPORT_ERROR", "Traceback: ImportError: No module named 'boto3'")
    result = run(capsys, BASE)
    assert result["failed"] is True
    assert "Failed to import the required Python library (boto3)" in result["msg"]


def test_missing_lz4_only_matters_for_full(capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_LZ4", False)
    monkeypatch.setattr(module, "LZ4_IMPORT_ERROR", "Traceback: ImportError: No module named 'lz4'")
    result = run(capsys, dict(BASE, integrity="full"))
    assert "Failed to import the required Python library (lz4)" in result["msg"]


def test_malformed_endpoint(capsys):
    result = run(capsys, dict(BASE, endpoint_url="minio without scheme"))
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid S3 connection options: ")


# ---- against the lab S3 server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    """A bucket with a fresh and a two-day-old volume."""
    with S3Server() as s3:
        store = BackupStore(s3.client(), s3.bucket)
        now = datetime.datetime.now(datetime.timezone.utc)
        for name, taken in (("pvc-fresh", now), ("pvc-old", now - datetime.timedelta(days=2))):
            labels = {"KubernetesStatus": json.dumps({"namespace": "apps", "pvcName": "data-" + name, "pvName": name})}
            writer = store.begin_backup(name, "backup-" + name, compression="lz4", volume_size=BLOCK, labels=labels)
            writer.write_image((name.encode() * BLOCK)[:BLOCK])
            writer.finish(snapshot_name="snap", snapshot_created_at=taken, created_at=taken, volume_size=BLOCK, labels=labels)
        yield s3


def connection(s3, **overrides):
    args = {"endpoint_url": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key, "bucket": s3.bucket,
            "region": s3.region, "concurrency": 4}
    args.update(overrides)
    return args


def keys(s3):
    return sorted(obj["Key"] for obj in s3.client().list_objects_v2(Bucket=s3.bucket).get("Contents", []))


def test_report_without_fail_on(capsys, server):
    result = run(capsys, connection(server, max_age="1d", expected_volumes=["pvc-fresh", "pvc-gone"]))
    assert result.get("failed") is not True, result["msg"] if "msg" in result else result
    assert result["changed"] is False
    assert [volume["name"] for volume in result["volumes"]] == ["pvc-fresh", "pvc-old"]
    assert result["stale"] == ["pvc-old"]
    assert result["missing"] == ["pvc-gone"]
    assert result["findings"] == {"unreachable": False, "stale": 1, "missing": 1, "integrity": 0, "problems": 0}
    assert result["endpoint_url"] == server.endpoint
    assert server.secret_key not in result["_raw"]


def test_fail_on_fails_with_a_summary_and_keeps_the_facts(capsys, server):
    result = run(capsys, connection(server, max_age="1d", expected_volumes=["pvc-fresh", "pvc-gone"],
                                    fail_on=["stale", "missing", "integrity"], integrity="structure"))
    assert result["failed"] is True
    assert result["msg"] == ("Bucket check failed on stale: 1 volume(s) without a complete backup newer than 1d (pvc-old); "
                             "missing: 1 expected volume(s) without a complete backup in the bucket (pvc-gone)")
    assert result["changed"] is False
    assert len(result["volumes"]) == 2
    assert result["integrity"]["checked_blocks"] == 2


def test_fail_on_without_its_input_warns(capsys, server):
    result = run(capsys, connection(server, fail_on=["stale", "missing", "integrity"]))
    assert result.get("failed") is not True
    warnings = result["_warnings"]
    assert "max_age is not set" in warnings
    assert "expected_volumes is empty" in warnings
    assert "integrity=none" in warnings


def test_check_mode_skips_the_write_probe(capsys, server):
    before = keys(server)
    result = run(capsys, connection(server, write_probe=True), check_mode=True)
    assert result["changed"] is False
    assert result["write_probe"]["performed"] is False
    assert result["write_probe"]["skipped_reason"] == "check mode"
    assert keys(server) == before


def test_write_probe_outside_check_mode(capsys, server):
    before = keys(server)
    result = run(capsys, connection(server, write_probe=True))
    probe = result["write_probe"]
    assert (probe["performed"], probe["ok"], probe["skipped_reason"]) == (True, True, None)
    assert probe["key"].startswith("backupstore/.longhorn-dr-write-probe-")
    assert keys(server) == before
    assert result["changed"] is False


def test_wrong_secret_is_reported_never_shown(capsys, server):
    result = run(capsys, connection(server, secret_key=WRONG_SECRET))
    assert result.get("failed") is not True
    assert result["access"]["error_code"] == "SignatureDoesNotMatch"
    assert result["access"]["credentials_valid"] is False
    assert result["findings"]["unreachable"] is True
    failed = run(capsys, connection(server, secret_key=WRONG_SECRET, session_token="session-token-value-0123456789",
                                    fail_on=["unreachable"]))
    assert failed["failed"] is True
    assert failed["msg"].startswith("Bucket check failed on unreachable: Failed to list objects in bucket ")
    for raw in (result["_raw"], failed["_raw"]):
        assert WRONG_SECRET not in raw
        assert "session-token-value-0123456789" not in raw
        assert server.secret_key not in raw
