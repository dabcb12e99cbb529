# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench-only inventory plugin: ansible-core's own cost for a given inventory.

It reads host entries that vman.lifecycle.fleet would make (a JSON file written by
bench_fleet_inventory.py) and only calls add_host, add_group, add_child and set_variable, so
``ansible-inventory --list`` on it measures what ansible-core itself spends on those hosts,
groups and variables; what the fleet plugin takes beyond it is the plugin's own work.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: vman_bench_floor
short_description: Benchmark floor, host entries from a JSON file
description: Hosts, groups and variables from a JSON list of fleet host entries.
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [vman_bench_floor]
  entries:
    description: Path of the JSON file of host entries.
    type: path
    required: true
  variables:
    description: Set the host variables; false makes the same hosts and groups without them.
    type: bool
    default: true
"""

import json

from ansible.plugins.inventory import BaseInventoryPlugin


class InventoryModule(BaseInventoryPlugin):
    """Host entries from a JSON file, nothing else."""

    NAME = "vman_bench_floor"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith("floor.yml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        with open(self.get_option("entries"), encoding="utf-8") as handle:
            entries = json.load(handle)
        variables = self.get_option("variables")
        for entry in entries:
            name = entry["name"]
            self.inventory.add_host(name)
            for group in entry["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for key, value in entry["vars"].items() if variables else ():
                self.inventory.set_variable(name, key, value)
