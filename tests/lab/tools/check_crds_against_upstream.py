# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare the lab's Longhorn CRD manifest with Longhorn's published CRDs.

Developer tool, not a test: users do not have the upstream file.

    python tests/lab/tools/check_crds_against_upstream.py PATH/TO/longhorn-crds.yaml [--show KIND]

Prints, per kind present in the lab manifest, every schema path whose type, enum, format, nullable,
required, default, bounds, pattern or x-kubernetes-* markers differ, and the paths the lab leaves out.
The exit code is 1 when there is a mismatch (missing paths alone do not count).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import yaml

LAB_MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "longhorn", "crds.yaml")
# Keys compared per schema node.
FACETS = ("type", "enum", "format", "nullable", "required", "default", "minimum", "maximum", "minLength", "maxLength", "pattern",
          "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")
# The published file is a Helm template: these lines are not YAML.
HELM_LINE = re.compile(r"\{\{.*\}\}")


def load_crds(path):
    with open(path, encoding="utf-8") as handle:
        text = "\n".join(line for line in handle.read().splitlines() if not HELM_LINE.search(line))
    crds = {}
    docs = []
    for doc in yaml.safe_load_all(text):
        docs.extend(doc.get("items") or [] if doc and doc.get("kind") == "List" else [doc])
    for doc in docs:
        if doc and doc.get("kind") == "CustomResourceDefinition":
            crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def storage_version(crd):
    for version in crd["spec"]["versions"]:
        if version.get("storage"):
            return version
    raise ValueError("no storage version in %s" % crd["metadata"]["name"])


def flatten(schema, path="", out=None):
    """Map each schema path (``.spec.size``, ``.status.conditions[]``) to its compared facets."""
    out = {} if out is None else out
    out[path or "."] = {key: schema[key] for key in FACETS if key in schema}
    for name, child in (schema.get("properties") or {}).items():
        flatten(child, "%s.%s" % (path, name), out)
    if isinstance(schema.get("items"), dict):
        flatten(schema["items"], path + "[]", out)
    if isinstance(schema.get("additionalProperties"), dict):
        flatten(schema["additionalProperties"], path + "{}", out)
    return out


def crd_meta(crd):
    version = storage_version(crd)
    return {
        "group": crd["spec"]["group"],
        "scope": crd["spec"]["scope"],
        "plural": crd["spec"]["names"]["plural"],
        "shortNames": sorted(crd["spec"]["names"].get("shortNames") or []),
        "version": version["name"],
        "served": version.get("served"),
        "status subresource": "status" in (version.get("subresources") or {}),
    }


def compare(lab, upstream):
    """Return (mismatch lines, missing paths) for one kind."""
    problems = []
    lab_meta, up_meta = crd_meta(lab), crd_meta(upstream)
    for key, value in up_meta.items():
        if lab_meta.get(key) != value:
            problems.append("  %s: lab %r, upstream %r" % (key, lab_meta.get(key), value))
    lab_fields = flatten(storage_version(lab)["schema"]["openAPIV3Schema"])
    up_fields = flatten(storage_version(upstream)["schema"]["openAPIV3Schema"])
    for path in sorted(lab_fields):
        if path not in up_fields:
            problems.append("  %s: not in upstream" % path)
            continue
        for facet in FACETS:
            ours, theirs = lab_fields[path].get(facet), up_fields[path].get(facet)
            if facet in ("enum", "required") and ours is not None and theirs is not None:
                ours, theirs = sorted(ours, key=str), sorted(theirs, key=str)
            if ours != theirs:
                problems.append("  %s %s: lab %r, upstream %r" % (path, facet, ours, theirs))
    missing = sorted(path for path in up_fields if path not in lab_fields)
    return problems, missing


def show(crd):
    for path, facets in sorted(flatten(storage_version(crd)["schema"]["openAPIV3Schema"]).items()):
        print("%-70s %s" % (path, " ".join("%s=%s" % item for item in facets.items())))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="Longhorn's crds.yaml (chart/templates/crds.yaml)")
    parser.add_argument("--lab", default=LAB_MANIFEST, help="the lab manifest (default: %(default)s)")
    parser.add_argument("--show", metavar="KIND", help="print the flattened upstream schema of KIND and exit")
    parser.add_argument("--missing", action="store_true", help="also list upstream paths the lab leaves out")
    args = parser.parse_args(argv)

    upstream = load_crds(args.upstream)
    if args.show:
        show(upstream[args.show])
        return 0
    lab = load_crds(args.lab)
    failed = False
    for kind in sorted(lab):
        if kind not in upstream:
            print("%s: not an upstream kind" % kind)
            failed = True
            continue
        problems, missing = compare(lab[kind], upstream[kind])
        print("%s: %d mismatches, %d upstream paths left out" % (kind, len(problems), len(missing)))
        for line in problems:
            print(line)
        if args.missing:
            for path in missing:
                print("  left out: %s" % path)
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
