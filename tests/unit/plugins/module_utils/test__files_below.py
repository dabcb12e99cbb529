# -*- coding: utf-8 -*-
"""_files' writers below a guest's root: no symlink below the root is followed, on real files."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _files


@pytest.fixture
def layout(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


def test_writes_new_dirs_with_their_modes_and_the_file_with_its_mode(layout):
    root = layout[0]
    _files.write_below(str(root), "home/u/.ssh/authorized_keys", "ssh-ed25519 AAA u\n", 0o600,
                       dir_modes={"home/u/.ssh": 0o700})
    keys = root / "home/u/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAA u\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "home/u/.ssh").stat().st_mode) == 0o700
    assert not [p for p in (root / "home/u/.ssh").iterdir() if p.name.startswith(".")]  # no temp left
    assert _files.read_below(str(root), "home/u/.ssh/authorized_keys") == b"ssh-ed25519 AAA u\n"
    assert _files.read_below(str(root), "home/u/.ssh/missing") is None
    assert _files.read_below(str(root), "nope/x") is None


def test_a_symlinked_directory_on_the_way_is_refused_and_nothing_lands_outside(layout):
    root, outside = layout
    (root / "etc").symlink_to(outside)
    with pytest.raises(OSError) as err:
        _files.write_below(str(root), "etc/resolv.conf", "nameserver 192.0.2.1\n")
    assert err.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert list(outside.iterdir()) == []
    with pytest.raises(OSError):
        _files.read_below(str(root), "etc/passwd")


def test_a_symlink_at_the_name_is_replaced_not_followed(layout):
    root, outside = layout
    target = outside / "victim"
    target.write_text("keep me\n")
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").symlink_to(target)
    assert _files.lexists_below(str(root), "etc/resolv.conf")
    with pytest.raises(OSError):
        _files.read_below(str(root), "etc/resolv.conf")   # reading it does not follow either
    _files.write_below(str(root), "etc/resolv.conf", "nameserver 192.0.2.1\n")
    assert target.read_text() == "keep me\n"
    assert not (root / "etc/resolv.conf").is_symlink()
    assert (root / "etc/resolv.conf").read_text() == "nameserver 192.0.2.1\n"


def test_symlink_entries_and_bad_paths(layout):
    root = layout[0]
    _files.write_below(str(root), "etc/systemd/network/99-default.link", None, link="/dev/null")
    assert os.readlink(root / "etc/systemd/network/99-default.link") == "/dev/null"
    for bad in ("", "/etc/x", "etc/../../x", "etc//x", "./x"):
        with pytest.raises(ValueError):
            _files.write_below(str(root), bad, "x")
    assert not _files.lexists_below(str(root), "etc/none")
