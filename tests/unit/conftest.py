# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the unit tree.

The real-LXC and PostgreSQL fixtures are registered here, once: imported into two test modules, a session
fixture is two fixtures to pytest and its set-up ran twice in one session.
"""

from __future__ import annotations

from ansible_collections.vman.lifecycle.tests.testbed.lxc_testbed import lxc_testbed  # noqa: F401  pylint: disable=unused-import
from ansible_collections.vman.lifecycle.tests.testbed.pg_testbed import pg_server  # noqa: F401  pylint: disable=unused-import
