# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iSCSI naming for VM root LUNs (private, no stability promise).

Pure functions shared by the xl.cfg renderer and the iSCSI login code, so that the disk path
in a config and the device a login creates are computed in one place.
"""

from __future__ import annotations

ISCSI_PORT = 3260


def target_iqn(base_wwn: str, org: str, name: str) -> str:
    """IQN of a VM's root target: ``<base_wwn>:<org>-<name>``."""
    return f"{base_wwn}:{org}-{name}"


def portal(server: str, port: int = ISCSI_PORT) -> str:
    """``server:port``; IPv6 literals are bracketed as udev names them."""
    if ":" in server and not server.startswith("["):
        server = f"[{server}]"
    return f"{server}:{port}"


def by_path(server: str, base_wwn: str, org: str, name: str, lun: int = 0) -> str:
    """The udev by-path device of a VM's root LUN after login."""
    return (f"/dev/disk/by-path/ip-{portal(server)}-iscsi-"
            f"{target_iqn(base_wwn, org, name)}-lun-{lun}")
