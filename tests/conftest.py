# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loaded before every other conftest of the test tree.

pytest-xdist workers start with the controller's sys.path and then pytest.ini's ``pythonpath``
is inserted again, so ``build/collections`` is on the path twice. The namespace packages
``ansible_collections.vman.lifecycle`` then have two (equal) path entries, and ansible-core's
collection loader refuses a package with more than one ("this loader requires exactly one path
to search"): every inventory-plugin test failed under ``-n 2``. Keep the first of each entry.
"""

from __future__ import annotations

import sys


def _dedupe_sys_path():
    seen = set()
    kept = []
    for entry in sys.path:
        if entry in seen:
            continue
        seen.add(entry)
        kept.append(entry)
    sys.path[:] = kept


_dedupe_sys_path()
