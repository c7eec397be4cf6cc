# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line of the lab: ``python -m tests.lab up|status|down|wipe-cluster|fault|serve``.

``up`` starts a detached ``serve`` process that holds the whole lab; the other
commands find it through ``<state-dir>/lab.json`` and talk to its control endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_STATE_DIR = os.environ.get("LAB_STATE_DIR", ".lab")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFO = "lab.json"


def _info_path(state_dir):
    return os.path.join(state_dir, INFO)


def _read_info(state_dir):
    try:
        with open(_info_path(state_dir), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _control(info, action, payload=None, timeout=120):
    request = urllib.request.Request(info["control_url"] + "/" + action, data=json.dumps(payload or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise SystemExit("lab: %s failed: %s" % (action, exc.read().decode(errors="replace"))) from None


# ---- serve: the long-running lab process ------------------------------------
class _ControlHandler(BaseHTTPRequestHandler):
    lab = None
    stop_event = None

    def log_message(self, *_args):
        return

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        action = self.path.strip("/")
        try:
            self._reply(200, _dispatch(self.lab, action, payload, self.stop_event))
        except (ValueError, KeyError) as exc:
            self._reply(400, {"error": "invalid request: %s" % exc})
        except Exception as exc:  # pylint: disable=broad-except
            # Answer every failure: a dropped connection tells the operator nothing.
            self._reply(500, {"error": "%s: %s" % (type(exc).__name__, exc)})


def _dispatch(lab, action, payload, stop_event):
    if action == "status":
        return {"counts": lab.store.object_counts(), "api_faults": lab.faults.api_faults()}
    if action == "wipe-cluster":
        lab.wipe_cluster()
        lab.wait_idle(timeout=30)
        return {"wiped": True, "counts": lab.store.object_counts()}
    if action == "fault":
        return _apply_fault(lab, payload)
    if action == "stop":
        stop_event.set()
        return {"stopping": True}
    raise ValueError("unknown action %r" % action)


def _apply_fault(lab, payload):
    kind = payload["kind"]
    if kind == "clear":
        lab.clear_faults()
        return {"cleared": True}
    if kind == "s3":
        lab.s3_fault(payload["mode"], delay=float(payload.get("delay") or 0), status=int(payload.get("status") or 503),
                     paths=payload.get("paths"))
        return {"s3": payload["mode"]}
    if kind == "api":
        fault = lab.api_fault(payload["path"], status=int(payload.get("status") or 500), methods=tuple(payload.get("methods") or ()),
                              timeout=float(payload.get("timeout") or 0), count=payload.get("count"))
        return {"api": fault.to_dict()}
    if kind == "restore":
        lab.fail_restore(payload["volume"])
        return {"restore_fails": payload["volume"]}
    if kind == "backup":
        lab.fail_backup(payload["volume"])
        return {"backup_fails": payload["volume"]}
    if kind == "block":
        key = lab.damage_block(payload["volume"], payload.get("backup"), mode=payload.get("mode", "corrupt"))
        return {"damaged": key}
    raise ValueError("unknown fault kind %r" % kind)


def cmd_serve(args):
    from .lab import Lab

    lab = Lab(args.state_dir, **_lab_options(args))
    lab.start()
    stop_event = threading.Event()
    _ControlHandler.lab = lab
    _ControlHandler.stop_event = stop_event
    control = ThreadingHTTPServer(("127.0.0.1", 0), _ControlHandler)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    lab.write_info({"control_url": "http://127.0.0.1:%d" % control.server_address[1]})
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    stop_event.wait()
    control.shutdown()
    lab.stop()
    return 0


def _lab_options(args):
    options = {}
    for name in ("bucket", "region", "longhorn_version", "backup_speed_mbps", "restore_speed_mbps"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "object_lock", False):
        options["object_lock"] = True
    if getattr(args, "legacy", False):
        options["longhorn_version"] = "v1.7.2"
        options["legacy_backup_target_settings"] = True
    return options


# ---- client commands ---------------------------------------------------------
def cmd_up(args):
    info = _read_info(args.state_dir)
    if info and _alive(info["pid"]):
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    os.makedirs(args.state_dir, exist_ok=True)
    argv = sys.argv[1:] if args.argv is None else args.argv
    options = argv[argv.index("up") + 1:]
    command = [sys.executable, "-m", "tests.lab", "--state-dir", args.state_dir, "serve"] + options
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    with open(os.path.join(args.state_dir, "lab.log"), "ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env,  # pylint: disable=consider-using-with
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        info = _read_info(args.state_dir)
        if info and info.get("control_url") and info.get("pid") == process.pid:
            print(json.dumps(info, indent=2, sort_keys=True))
            return 0
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    sys.stderr.write("lab: failed to start; see %s\n" % os.path.join(args.state_dir, "lab.log"))
    return 1


def _running_info(args):
    info = _read_info(args.state_dir)
    if not info or not _alive(info["pid"]):
        raise SystemExit("lab: no lab is running in %s (run: python -m tests.lab up)" % args.state_dir)
    return info


def cmd_status(args):
    info = _read_info(args.state_dir)
    if not info or not _alive(info["pid"]):
        print(json.dumps({"running": False, "state_dir": args.state_dir}))
        return 3
    status = _control(info, "status")
    print(json.dumps(dict(info, running=True, **status), indent=2, sort_keys=True))
    return 0


def cmd_down(args):
    info = _read_info(args.state_dir)
    if not info or not _alive(info["pid"]):
        print("lab: not running")
        return 0
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(info["pid"]):
        time.sleep(0.1)
    if _alive(info["pid"]):
        os.kill(info["pid"], signal.SIGKILL)
    print("lab: stopped")
    return 0


def cmd_wipe(args):
    result = _control(_running_info(args), "wipe-cluster")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_fault(args):
    payload = {"kind": args.kind}
    if args.kind == "s3":
        payload.update(mode=args.mode, delay=args.delay, status=args.status, paths=args.paths)
    elif args.kind == "api":
        payload.update(path=args.path, status=args.status, methods=args.method or [], timeout=args.timeout, count=args.count)
    elif args.kind in ("restore", "backup"):
        payload.update(volume=args.volume)
    elif args.kind == "block":
        payload.update(volume=args.volume, backup=args.backup, mode=args.mode)
    print(json.dumps(_control(_running_info(args), "fault", payload), indent=2, sort_keys=True))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="Local stand-in for k3s + Longhorn + MinIO.")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="directory holding all lab state (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    def lab_options(p):
        p.add_argument("--bucket")
        p.add_argument("--region")
        p.add_argument("--longhorn-version", help="e.g. v1.9.2; v1.7.x or lower uses the backup-target Settings")
        p.add_argument("--legacy", action="store_true", help="present Longhorn 1.7 (backup target through Settings)")
        p.add_argument("--object-lock", action="store_true", help="create the bucket with object lock")
        p.add_argument("--backup-speed-mbps", type=float, help="emulated backup throughput, 0 = instant")
        p.add_argument("--restore-speed-mbps", type=float, help="emulated restore throughput, 0 = instant")

    up = sub.add_parser("up", help="start the lab in the background and print its connection info")
    lab_options(up)
    up.add_argument("--timeout", type=float, default=60)
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="run the lab in the foreground")
    lab_options(serve)
    serve.add_argument("--timeout", type=float, default=60)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("status", help="show whether the lab runs, and what it holds").set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop the lab").set_defaults(func=cmd_down)
    sub.add_parser("wipe-cluster", help="delete every Kubernetes object and node-local data; the bucket survives").set_defaults(func=cmd_wipe)

    fault = sub.add_parser("fault", help="inject a fault")
    fsub = fault.add_subparsers(dest="kind", required=True)
    s3 = fsub.add_parser("s3", help="S3 down, slow or answering errors")
    s3.add_argument("mode", choices=("ok", "down", "slow", "error"))
    s3.add_argument("--delay", type=float, default=0.0)
    s3.add_argument("--status", type=int, default=503)
    s3.add_argument("--paths", help="only keys containing this")
    api = fsub.add_parser("api", help="API server answering an error or timing out on matching paths")
    api.add_argument("--path", required=True, help="regular expression searched in the request path")
    api.add_argument("--status", type=int, default=500)
    api.add_argument("--method", action="append", help="only these HTTP methods (repeatable)")
    api.add_argument("--timeout", type=float, default=0.0, help="hold the request this long, then drop it")
    api.add_argument("--count", type=int, help="only the next N matching requests")
    restore = fsub.add_parser("restore", help="make the Longhorn restore of a volume fail")
    restore.add_argument("--volume", required=True)
    backup = fsub.add_parser("backup", help="make backups of a volume fail")
    backup.add_argument("--volume", required=True)
    block = fsub.add_parser("block", help="corrupt or delete a block in the bucket")
    block.add_argument("--volume", required=True)
    block.add_argument("--backup")
    block.add_argument("--mode", choices=("corrupt", "delete"), default="corrupt")
    fsub.add_parser("clear", help="remove every fault")
    for p in (fault,):
        p.set_defaults(func=cmd_fault)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.state_dir = os.path.abspath(args.state_dir)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
