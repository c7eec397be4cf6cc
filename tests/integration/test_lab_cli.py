# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's command line, as `make demo` and a developer use it: up, fault, wipe-cluster, down."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import stat
import subprocess
import sys
import time
import urllib.parse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def lab_cli(state_dir, *args, check=True, timeout=120):
    result = subprocess.run([sys.executable, "-m", "tests.lab", "--state-dir", str(state_dir), *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError("lab %s failed (rc=%s):\n%s\n%s" % (" ".join(args), result.returncode, result.stdout, result.stderr))
    return result


def s3(info, secret=None):
    return boto3.client("s3", endpoint_url=info["s3_endpoint"], aws_access_key_id=info["access_key"],
                        aws_secret_access_key=secret or info["secret_key"], region_name=info["region"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def core_api(info):
    return k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=info["kubeconfig"]))


def custom_api(info):
    return k8s_client.CustomObjectsApi(k8s_config.new_client_from_config(config_file=info["kubeconfig"]))


def port_open(url):
    parts = urllib.parse.urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


@pytest.fixture
def running_lab(tmp_path):
    state_dir = tmp_path / "lab"
    info = json.loads(lab_cli(state_dir, "up").stdout)
    yield state_dir, info
    lab_cli(state_dir, "down", check=False)


def test_up_prints_and_writes_connection_info(running_lab):
    state_dir, info = running_lab
    for key in ("kubeconfig", "s3_endpoint", "bucket", "access_key", "secret_key", "region", "api_server", "audit_log", "pid"):
        assert info.get(key), key
    written = json.loads((state_dir / "lab.json").read_text())
    assert written["s3_endpoint"] == info["s3_endpoint"] and written["kubeconfig"] == info["kubeconfig"]
    # The file holds credentials: readable by its owner only.
    assert stat.S_IMODE(os.stat(state_dir / "lab.json").st_mode) == 0o600
    assert info["bucket"] == "longhorn-backups"
    # Everything listens on loopback.
    assert urllib.parse.urlsplit(info["s3_endpoint"]).hostname == "127.0.0.1"
    assert urllib.parse.urlsplit(info["api_server"]).hostname == "127.0.0.1"

    namespaces = [ns.metadata.name for ns in core_api(info).list_namespace().items]
    assert "longhorn-system" in namespaces
    target = custom_api(info).get_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "backuptargets", "default")
    assert target["spec"]["backupTargetURL"] == ""

    s3(info).head_bucket(Bucket=info["bucket"])
    with pytest.raises(ClientError) as denied:
        s3(info, secret="not-the-secret").head_bucket(Bucket=info["bucket"])
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    status = json.loads(lab_cli(state_dir, "status").stdout)
    assert status["running"] is True and status["counts"]["longhorn.io/settings"] > 0


def test_faults_from_the_command_line(running_lab):
    state_dir, info = running_lab
    lab_cli(state_dir, "fault", "s3", "error", "--status", "503")
    with pytest.raises(ClientError) as failed:
        s3(info).head_bucket(Bucket=info["bucket"])
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    lab_cli(state_dir, "fault", "clear")
    s3(info).head_bucket(Bucket=info["bucket"])

    lab_cli(state_dir, "fault", "api", "--path", "/api/v1/namespaces$", "--status", "500", "--count", "1")
    api = core_api(info)
    with pytest.raises(ApiException) as broken:
        api.list_namespace()
    assert broken.value.status == 500
    assert api.list_namespace().items, "the counted fault must be used up after one request"

    with pytest.raises(AssertionError, match="unknown|invalid|error"):
        lab_cli(state_dir, "fault", "block", "--volume", "no-such-volume")


def test_wipe_cluster_keeps_the_bucket_and_reinstalls_longhorn(running_lab):
    state_dir, info = running_lab
    api = core_api(info)
    api.create_namespaced_config_map("default", {"metadata": {"name": "before-wipe"}, "data": {"a": "b"}})
    custom_api(info).patch_namespaced_custom_object(
        "longhorn.io", "v1beta2", "longhorn-system", "backuptargets", "default", {"spec": {"backupTargetURL": "s3://longhorn-backups@us-east-1/"}})
    s3(info).put_object(Bucket=info["bucket"], Key="backupstore/marker", Body=b"survives")

    lab_cli(state_dir, "wipe-cluster")

    api = core_api(info)
    with pytest.raises(ApiException) as gone:
        api.read_namespaced_config_map("before-wipe", "default")
    assert gone.value.status == 404
    target = custom_api(info).get_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "backuptargets", "default")
    assert target["spec"]["backupTargetURL"] == "", "Longhorn comes back with an empty default BackupTarget"
    assert s3(info).get_object(Bucket=info["bucket"], Key="backupstore/marker")["Body"].read() == b"survives"


def test_legacy_longhorn_and_down_leaves_nothing_running(tmp_path):
    state_dir = tmp_path / "legacy"
    info = json.loads(lab_cli(state_dir, "up", "--legacy").stdout)
    try:
        settings = custom_api(info).list_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "settings")
        by_name = {item["metadata"]["name"]: item.get("value") for item in settings["items"]}
        assert by_name["current-longhorn-version"].startswith("v1.7")
        assert "backup-target" in by_name, "Longhorn <= 1.7 keeps the backup target in Settings"
    finally:
        lab_cli(state_dir, "down")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (port_open(info["api_server"]) or port_open(info["s3_endpoint"])):
        time.sleep(0.2)
    assert not port_open(info["api_server"]), "the API server must stop with the lab"
    assert not port_open(info["s3_endpoint"]), "the S3 server must stop with the lab"
    with pytest.raises(OSError):
        os.kill(info["pid"], 0)
    assert not (state_dir / "lab.json").exists()
    assert json.loads(lab_cli(state_dir, "status", check=False).stdout)["running"] is False
