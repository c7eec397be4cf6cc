# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This doc fragment is PRIVATE to homelab.longhorn_dr: it may change at any time.
# Do not use it from other collections or standalone modules.

from __future__ import annotations


class ModuleDocFragment:

    # Descriptions of the standard attributes; every module extends this one
    # and then states its own support level.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # For modules that only read state; use together with DOCUMENTATION.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    # For modules that only read state but whose idempotency must be stated
    # separately from check/diff mode; use together with DOCUMENTATION.
    IDEMPOTENT_NOT_MODIFY_STATE = r"""
options: {}
attributes:
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    ACTIONGROUP_LONGHORN = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/homelab.longhorn_dr.longhorn) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - homelab.longhorn_dr.longhorn
"""

    ACTIONGROUP_S3 = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/homelab.longhorn_dr.s3) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - homelab.longhorn_dr.s3
"""
