# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of the vm_snapshot and vm_snapshot_info modules (private, no stability promise).

:func:`ensure` and :func:`gather` take an open libvirt connection and the module's parameters
as a plain dict and return the result dict; they never call ``exit_json``/``fail_json``, so
they run the same under Ansible and under pytest (against ``test:///default``).
"""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, check_line

SNAPSHOT_STATES = ("present", "reverted", "absent")

#: Argument spec of vm_snapshot besides the shared ``uri`` (see LIBVIRT_URI_SPEC).
VM_SNAPSHOT_SPEC = {
    "domain": {"type": "str", "required": True, "aliases": ["vm"]},
    "name": {"type": "str", "required": True, "aliases": ["snapshot"]},
    "state": {"type": "str", "default": "present", "choices": list(SNAPSHOT_STATES)},
    "description": {"type": "str"},
    "kind": {"type": "str", "default": "internal", "choices": list(lv.SNAPSHOT_KINDS)},
    "quiesce": {"type": "bool", "default": False},
    "revert_state": {"type": "str", "default": "snapshot", "choices": list(lv.REVERT_STATES)},
    "force": {"type": "bool", "default": False},
    "children": {"type": "bool", "default": False},
}

VM_SNAPSHOT_INFO_SPEC = {
    "domain": {"type": "str", "required": True, "aliases": ["vm"]},
    "name": {"type": "str", "aliases": ["snapshot"]},
}


def _summary(dom) -> dict:
    """What the diff shows: the snapshot names (oldest first) and the current one."""
    infos = lv.list_snapshots(dom)
    return {"snapshots": [i["name"] for i in infos], "current": lv.current_snapshot_name(dom)}


def ensure(conn, params: dict, check_mode: bool = False) -> dict:
    """Bring snapshot ``params['name']`` of ``params['domain']`` to ``params['state']``.

    present: create unless a snapshot of that name exists (an existing one is left as it is,
    even when its description or kind differ). absent: delete when it exists (with its
    descendants when ``children``). reverted: revert every time it is asked and report a change,
    because libvirt cannot tell whether the domain changed since the snapshot was taken.
    """
    state = params.get("state") or "present"
    if state not in SNAPSHOT_STATES:
        raise ValidationError(params.get("domain"), "state", state,
                              f"must be one of {', '.join(SNAPSHOT_STATES)}")
    dom = lv.get_domain(conn, params["domain"])
    name = lv.validate_snapshot_name(params["domain"], params["name"])
    check_line(name, "description", params.get("description"), max_len=4096, allow_none=True)
    before = _summary(dom)
    existing = lv.find_snapshot(dom, name)
    result = {"changed": False, "snapshot": None, "power_state": lv.domain_state(dom)}

    if state == "present":
        if existing is not None:
            result["snapshot"] = lv.snapshot_info(existing)
            after = before
        else:
            result["changed"] = True
            if (params.get("kind") or "internal") == "internal":
                # read-only, so check mode fails where the real run would
                lv.check_internal_snapshot(dom)
            if check_mode:
                result["snapshot"] = _predicted(name, params, before, result["power_state"])
                after = {"snapshots": before["snapshots"] + [name], "current": name}
            else:
                result["snapshot"] = lv.create_snapshot(
                    dom, name, params.get("description"), params.get("kind") or "internal",
                    bool(params.get("quiesce")))
                after = _summary(dom)
                result["power_state"] = lv.domain_state(dom)

    elif state == "absent":
        if existing is None:
            after = before
            result["deleted"] = []
        else:
            result["changed"] = True
            info = lv.snapshot_info(existing)
            if check_mode:
                gone = [name] + (lv.descendants(dom, name) if params.get("children") else [])
                current = before["current"]
                if current in gone:
                    # libvirt makes the deleted snapshot's parent current
                    current = info["parent"]
                after = {"snapshots": [n for n in before["snapshots"] if n not in gone],
                         "current": current}
                result["deleted"] = gone
            else:
                result["deleted"] = lv.delete_snapshot(dom, name, bool(params.get("children")))
                after = _summary(dom)

    else:  # reverted
        if existing is None:
            # also in check mode: reverting to nothing is an error, not a prediction
            lv.get_snapshot(dom, name)
        result["changed"] = True
        revert_state = params.get("revert_state") or "snapshot"
        info = lv.snapshot_info(existing)
        if check_mode:
            result["power_state"] = _predicted_power(info["state"], revert_state)
            result["snapshot"] = dict(info, current=True)
        else:
            result["power_state"] = lv.revert_snapshot(dom, name, revert_state,
                                                       bool(params.get("force")))
            result["snapshot"] = lv.snapshot_info(lv.get_snapshot(dom, name))
        after = {"snapshots": before["snapshots"], "current": name}

    result["diff"] = {"before": before, "after": after,
                      "before_header": f"{params['domain']} snapshots",
                      "after_header": f"{params['domain']} snapshots"}
    return result


def _predicted(name, params, before, power_state) -> dict:
    """The facts a new snapshot would have (check mode): what we know before creating it."""
    snap_state = "disk-snapshot" if params.get("kind") == "external" else (
        "shutoff" if power_state == "stopped" else power_state)
    return {
        "name": name, "description": params.get("description"), "state": snap_state,
        "creation_time": None, "creation_time_iso": None, "parent": before["current"],
        "memory": None, "kind": params.get("kind") or "internal", "disks": [], "current": True,
        "children": 0,
    }


def _predicted_power(snapshot_state: str | None, revert_state: str) -> str:
    if revert_state != "snapshot":
        return revert_state
    return {"running": "running", "paused": "paused"}.get(snapshot_state or "", "stopped")


def gather(conn, params: dict) -> dict:
    """Facts of every snapshot of a domain, or of the one named ``params['name']``."""
    dom = lv.get_domain(conn, params["domain"])
    if params.get("name"):
        snaps = [lv.snapshot_info(lv.get_snapshot(dom, params["name"]))]
    else:
        snaps = lv.list_snapshots(dom)
    return {
        "changed": False,
        "snapshots": snaps,
        "current": lv.current_snapshot_name(dom),
        "power_state": lv.domain_state(dom),
    }
