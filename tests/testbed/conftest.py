# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the testbed tests: the session-wide Xen testbed."""

from __future__ import annotations

from xen_testbed import xen_testbed  # noqa: F401  pylint: disable=unused-import
