# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install seed: files written into a new guest's root before its first boot
(private, no stability promise).

The seed is what the seed document's installer carries into the VM: the one-time callback
token and URL, a tiny callback client run by systemd at boot (it POSTs the token and deletes
it), the host keys the controller generated (so the controller knows them before the first
SSH connection), the controller's public keys for root and the host name.

:func:`seed_files` is pure; :func:`apply_seed` writes into a directory tree that belongs to
the guest without ever following a symlink in it.
"""

from __future__ import annotations

import os
import re
import stat
import urllib.parse

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._files import open_parent_below, write_below

TOKEN_PATH = "etc/vman/install-token"
URL_PATH = "etc/vman/install-callback.url"
SCRIPT_PATH = "usr/local/sbin/vman-install-callback"
UNIT_NAME = "vman-install-callback.service"
UNIT_PATH = "etc/systemd/system/" + UNIT_NAME
WANTS_PATH = "etc/systemd/system/multi-user.target.wants/" + UNIT_NAME
KEY_TYPES = ("rsa", "ecdsa", "ed25519", "dsa")

CALLBACK_SCRIPT = '''#!/usr/bin/python3
"""Tell the vman controller that this guest is installed: POST the one-time token, retried
until it is accepted, then delete it. Written by vman.lifecycle.vm_install_seed."""
import os
import sys
import time
import urllib.error
import urllib.request

TOKEN = "/%(token)s"
URL = "/%(url)s"
RETRY_S = 3
GIVE_UP_S = 7200


def post(url, token):
    request = urllib.request.Request(url, data=b"", method="POST",
                                     headers={"Authorization": "Bearer " + token})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def main():
    with open(URL, encoding="ascii") as handle:
        url = handle.read().strip()
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        try:
            with open(TOKEN, encoding="ascii") as handle:
                token = handle.read().strip()
        except FileNotFoundError:
            return 0
        code = post(url, token)
        print("callback %%s: %%s" %% (url, code), flush=True)
        if code == 200:
            os.unlink(TOKEN)
            return 0
        time.sleep(RETRY_S)
    return 1


if __name__ == "__main__":
    sys.exit(main())
''' % {"token": TOKEN_PATH, "url": URL_PATH}

CALLBACK_UNIT = """[Unit]
Description=Tell the vman controller that the installation is done
ConditionPathExists=/%(token)s
Wants=network-online.target
After=network-online.target ssh.service

[Service]
Type=simple
ExecStart=/usr/bin/python3 /%(script)s

[Install]
WantedBy=multi-user.target
""" % {"token": TOKEN_PATH, "script": SCRIPT_PATH}

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                       r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")


class SeedFile:
    """One entry of the seed: a file (``text``, ``mode``) or a symlink (``link``)."""

    __slots__ = ("path", "text", "mode", "link", "secret")

    def __init__(self, path, text=None, mode=0o644, link=None, secret=False):
        self.path, self.text, self.mode, self.link, self.secret = path, text, mode, link, secret


def check_url(url) -> str:
    """An http(s) URL whose path ends in ``/callback/<vm>``, on one line."""
    parts = urllib.parse.urlsplit(str(url or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc or "\n" in str(url) \
            or parts.query or parts.fragment:
        raise ValidationError("vm_install_seed", "callback_url", url,
                              "must be an http:// or https:// URL without query or fragment")
    return str(url)


def seed_files(hostname=None, callback_url=None, token=None, host_keys=(), authorized_keys=()):
    """The seed as a list of :class:`SeedFile`; only the parts given are included."""
    files = []
    if hostname is not None:
        if not isinstance(hostname, str) or not _HOSTNAME.fullmatch(hostname):
            raise ValidationError("vm_install_seed", "hostname", hostname,
                                  "must be a lower-case host name or FQDN")
        files.append(SeedFile("etc/hostname", hostname.split(".")[0] + "\n"))
    if token is not None:
        if callback_url is None:
            raise ValidationError("vm_install_seed", "callback_url", None,
                                  "is required with a token")
        if not _TOKEN.fullmatch(token):
            raise ValidationError("vm_install_seed", "token", "********",
                                  "must be a URL-safe token of 16 to 256 characters")
        files += [
            SeedFile(TOKEN_PATH, token + "\n", 0o600, secret=True),
            SeedFile(URL_PATH, check_url(callback_url) + "\n"),
            SeedFile(SCRIPT_PATH, CALLBACK_SCRIPT, 0o755),
            SeedFile(UNIT_PATH, CALLBACK_UNIT),
            SeedFile(WANTS_PATH, link="/" + UNIT_PATH),
        ]
    for key in host_keys or ():
        kind = key.get("type")
        if kind not in KEY_TYPES:
            raise ValidationError("vm_install_seed", "host_keys.type", kind,
                                  "must be one of " + ", ".join(KEY_TYPES))
        private, public = key.get("private_key"), key.get("public_key")
        if not private or "PRIVATE KEY" not in private or not public or "\n" in public.strip():
            raise ValidationError("vm_install_seed", "host_keys", kind,
                                  "each key needs private_key (PEM/OpenSSH) and a one-line public_key")
        base = f"etc/ssh/ssh_host_{kind}_key"
        files += [SeedFile(base, private.strip() + "\n", 0o600, secret=True),
                  SeedFile(base + ".pub", public.strip() + "\n")]
    keys = [k.strip() for k in authorized_keys or () if k and k.strip()]
    if any("\n" in k for k in keys):
        raise ValidationError("vm_install_seed", "authorized_keys", "(multi-line)",
                              "one public key per list entry")
    if keys:
        files.append(SeedFile("root/.ssh/authorized_keys", "".join(k + "\n" for k in keys), 0o600))
    return files


# ---- writing below a root that belongs to the guest ---------------------------------------

#: directories the seed creates with a mode other than 0755
_DIR_MODES = {"root/.ssh": 0o700, "etc/vman": 0o700}


def _current(root, entry):
    """Whether ``entry`` is already in place exactly (content, mode or link target)."""
    fd = open_parent_below(root, entry.path, create=False)
    if fd is None:
        return False
    name = entry.path.rsplit("/", 1)[-1]
    try:
        st = os.lstat(name, dir_fd=fd)
        if entry.link is not None:
            return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=fd) == entry.link
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != entry.mode:
            return False
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as handle:
            return handle.read() == entry.text.encode("utf-8")
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def _write(root, entry):
    write_below(root, entry.path, entry.text, entry.mode, link=entry.link, dir_modes=_DIR_MODES)


def apply_seed(root, files, check=False):
    """Write the entries of ``files`` that differ below ``root``; return their paths."""
    if not os.path.isdir(root) or os.path.islink(root):
        raise ValidationError("vm_install_seed", "root", root, "is not a directory")
    try:
        changed = [entry.path for entry in files if not _current(root, entry)]
        if not check:
            by_path = {entry.path: entry for entry in files}
            for path in changed:
                _write(root, by_path[path])
    except OSError as exc:
        # ELOOP/ENOTDIR: a directory on the way is a symlink (or not a directory)
        raise StateError(f"cannot seed {root}: {exc.strerror or exc} at "
                         f"'{exc.filename or '?'}' (symlinks in the guest are never followed)") from None
    return changed
