# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the lxc_provision role over module_utils/_lxc_provision.py (thin wrappers).

Documented in lxc_provision_entries.yml, lxc_provision_step.yml, lxc_provision_converge.yml,
lxc_provision_report.yml and lxc_provision_recap.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc_provision as _prov


def _wrap(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def lxc_provision_entries(containers, state="started"):
    """Container mapping -> the ``containers`` list of one lxc_guest call."""
    return _wrap(_prov.guest_entries, containers, state)


def lxc_provision_step(spawn_result, step, containers=None, host_id=None, ssh_keys=(),
                       extra_hosts=(), peers=True, extra_facts=None, fact_name="vman_lxc",
                       commands=(), regenerate_host_keys=True):
    """The lxc_guest_setup ``containers`` input of one step after spawn."""
    if step == "hostsfile":
        return _wrap(_prov.hostsfile_step, spawn_result, containers, extra_hosts, peers)
    if step == "sshkeys":
        return _wrap(_prov.sshkeys_step, spawn_result, containers, ssh_keys)
    if step == "grains":
        return _wrap(_prov.grains_step, spawn_result, containers, host_id, extra_facts,
                     fact_name)
    if step == "initial_setup":
        return _wrap(_prov.initial_setup_step, spawn_result, containers, commands,
                     regenerate_host_keys)
    raise AnsibleFilterError(f"lxc_provision_step: unknown step {step!r} (hostsfile, sshkeys, "
                             "grains, initial_setup)")


def lxc_provision_converge(spawn_result, setup_result, workdir, playbook=None, role=None,
                           user="root", private_key=None, proxy_jump=None, gather_facts=True,
                           ansible_playbook_python=None, extra_args=(), containers=None):
    """Inventory, known_hosts, playbook and argv of the initial converge step."""
    return _wrap(_prov.converge_plan, spawn_result, setup_result, workdir, playbook, role, user,
                 private_key, proxy_jump, gather_facts, ansible_playbook_python, extra_args,
                 containers)


def lxc_provision_report(result, step, containers=None):
    """One line per container of a step's result."""
    return _wrap(_prov.step_report, step, result, containers)


def lxc_provision_recap(stdout):
    """PLAY RECAP of the initial converge run -> per-host counts, changed, failed."""
    return _prov.recap_summary(stdout)


class FilterModule:
    """vman.lifecycle lxc_provision filters."""

    def filters(self):
        return {"lxc_provision_entries": lxc_provision_entries,
                "lxc_provision_step": lxc_provision_step,
                "lxc_provision_converge": lxc_provision_converge,
                "lxc_provision_report": lxc_provision_report,
                "lxc_provision_recap": lxc_provision_recap}
