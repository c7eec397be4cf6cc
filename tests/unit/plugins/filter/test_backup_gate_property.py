# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A property of the gate's decision, over generated clusters and buckets (issue 10, part 1).

The gate passes exactly when every bound volume, and every unbound volume that holds data, has a
complete backup whose blocks are all present in the bucket, no older than max_age and not in the
future. The oracle below states that rule on its own; hypothesis looks for a cluster and a bucket on
which the filter and the oracle disagree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.plugins.filter.test_backup_gate_findings import (
    evaluate,
    healthy,
    volume,
)

MAX_AGE = 86400
TOLERANCE = 300
SNAPSHOT_AT = "2026-03-02T11:00:00Z"

# Ages around the edges that matter: the tolerance into the future, max_age, and far beyond both.
AGES = st.one_of(
    st.sampled_from([-TOLERANCE - 1, -TOLERANCE, 0, MAX_AGE, MAX_AGE + 1]),
    st.integers(min_value=-3 * MAX_AGE, max_value=3 * MAX_AGE),
)

VOLUME = st.fixed_dictionaries({
    "bound": st.booleans(),
    "actual_size": st.sampled_from([None, 0, 1, 2 ** 30]),
    "backup_age": st.one_of(st.none(), AGES),           # None: no completed backup at all
    "in_bucket": st.booleans(),
    "bucket_age_offset": st.sampled_from([0, 0, 0, -2 * MAX_AGE]),   # the bucket's clock may disagree
    "checked": st.sampled_from([True, True, True, False]),
    "missing_blocks": st.sampled_from([0, 0, 0, 1, 7]),
    "corrupt_blocks": st.sampled_from([0, 0, 0, 2]),
    "cfg_unreadable": st.sampled_from([False, False, False, True]),
})


def build(specs):
    info, bucket = healthy()
    info["volumes"], bucket["volumes"] = [], []
    for index, spec in enumerate(specs):
        name = "pvc-%03d" % index
        completed = None
        if spec["backup_age"] is not None:
            completed = {"name": "backup-" + name, "state": "Completed", "created_at": SNAPSHOT_AT,
                         "age_seconds": spec["backup_age"], "snapshot_created_at": SNAPSHOT_AT, "url": None, "size": 1,
                         "error": None}
        claim = "claim-%03d" % index
        entry = volume(name, claim if spec["bound"] else None, last=completed, completed=dict(completed) if completed else None,
                       actual_size=spec["actual_size"])
        info["volumes"].append(entry)
        if completed and spec["in_bucket"]:
            damage = []
            if spec["missing_blocks"] or spec["corrupt_blocks"]:
                damage = [{"backup": completed["name"], "missing_blocks": spec["missing_blocks"],
                           "corrupt_blocks": spec["corrupt_blocks"]}]
            bucket["volumes"].append({
                "name": name, "last_backup_name": completed["name"], "last_backup_at": SNAPSHOT_AT,
                "last_backup_age": spec["backup_age"] + spec["bucket_age_offset"], "integrity_checked": spec["checked"],
                "damaged_backups": damage, "unreadable_backups": [completed["name"]] if spec["cfg_unreadable"] else []})
    return info, bucket


def fresh(age):
    return age is not None and -TOLERANCE <= age <= MAX_AGE


def oracle(specs):
    """The rule of the issue, written without the filter's code."""
    for spec in specs:
        at_risk = spec["bound"] or spec["actual_size"] is None or spec["actual_size"] > 0
        if not at_risk:
            continue
        restorable = (
            fresh(spec["backup_age"])
            and spec["in_bucket"]
            and fresh(spec["backup_age"] + spec["bucket_age_offset"])
            and spec["checked"]
            and not spec["missing_blocks"]
            and not spec["corrupt_blocks"]
            and not spec["cfg_unreadable"]
        )
        if not restorable:
            return False
    return True


# No example database: the run leaves no .hypothesis directory in the checkout.
@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(VOLUME, max_size=6))
def test_the_gate_passes_exactly_when_every_volume_at_risk_is_restorable(specs):
    info, bucket = build(specs)
    result = evaluate(info, bucket, max_age=MAX_AGE, future_tolerance=TOLERANCE)
    assert result["passed"] is oracle(specs), result["report"]
    # A refusal always names something, and a pass names nothing.
    assert bool(result["findings"]) is not result["passed"]
