# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml as ansible-builder reads it: `ansible-builder create` (the real
tool, from requirements-dev.txt) writes the build context into tmp_path, and the Containerfile
and context are checked; bindep.txt, evaluated by bindep's own parser for the RPM and the Debian
platform, covers the build needs of every pip requirement and the run-time packages.

No image is built here (no container engine on this machine)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# ansible-builder of this venv, else of the repository's .venv (scripts/newest_core.sh runs the
# unit tests in a venv of its own, without the tooling of requirements-dev.txt)
BUILDER = next((b for b in (os.environ.get("VMAN_ANSIBLE_BUILDER"),
                            os.path.join(os.path.dirname(sys.executable), "ansible-builder"),
                            str(ROOT / ".venv" / "bin" / "ansible-builder"))
                if b and os.path.exists(b)), os.path.join(os.path.dirname(sys.executable),
                                                          "ansible-builder"))
RPM = ["platform:rpm", "platform:redhat", "platform:centos"]
DPKG = ["platform:dpkg", "platform:debian", "platform:ubuntu"]

# What each pip requirement needs from the system to be built from source, per platform; a
# requirement that installs from a wheel only says why (its build needs cannot come from bindep).
BUILD_NEEDS = {
    "libvirt-python": {  # sdist only: compiles against libvirt's headers, found by pkg-config
        "rpm": ["gcc", "pkgconf-pkg-config", "libvirt-devel", "python3.11-devel"],
        "dpkg": ["gcc", "pkg-config", "libvirt-dev", "python3-dev"]},
    "lxml": {"rpm": ["gcc", "libxml2-devel", "libxslt-devel", "python3.11-devel"],
             "dpkg": ["gcc", "libxml2-dev", "libxslt1-dev", "python3-dev"]},
    # the abi3 wheel is what installs; a source build also needs a Rust toolchain newer than
    # Debian 12's, which no bindep entry can give
    "cryptography": {"rpm": ["gcc", "openssl-devel", "libffi-devel"],
                     "dpkg": ["gcc", "libssl-dev", "libffi-dev"]},
    "netaddr": {"rpm": [], "dpkg": []},      # pure Python
    "dnspython": {"rpm": [], "dpkg": []},    # pure Python
    "psycopg": {"rpm": [], "dpkg": []},      # pure Python; [binary] is wheels with libpq inside
}
RUN_NEEDS = {
    "rpm": ["openssh-clients", "libvirt-client", "libvirt-libs"],
    "dpkg": ["openssh-client", "libvirt-clients", "libvirt0"],
}


def _requirement_names():
    names = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower())
    return names


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    assert os.path.exists(BUILDER), f"no {BUILDER}: pip install -r requirements-dev.txt"
    ctx = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run([BUILDER, "create", "-f", str(ROOT / "execution-environment.yml"),
                           "-c", str(ctx), "--output-filename", "Containerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctx


def _bindep(ctx, profiles):
    """The packages bindep selects from the context's bindep.txt for ``profiles`` (bindep's own
    parser, run with the Python that runs ansible-builder)."""
    code = ("import json, sys\nfrom bindep.depends import Depends\n"
            "d = Depends(open(sys.argv[1]).read())\n"
            "print(json.dumps([r[0] for r in d.active_rules(sys.argv[2:])]))")
    python = os.path.join(os.path.dirname(BUILDER), "python")
    proc = subprocess.run([python, "-c", code, str(ctx / "_build" / "bindep.txt"), *profiles],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_containerfile_states_base_image_python_and_steps(context):
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    text = (context / "Containerfile").read_text()
    base = ee["images"]["base_image"]["name"]
    assert f'ARG EE_BASE_IMAGE="{base}"' in text
    assert 'ARG PYCMD="/usr/bin/python3.11"' in text and 'ARG PYPKG="python3.11"' in text
    assert 'ARG PKGMGR="/usr/bin/dnf"' in text       # ansible-builder's scripts: dnf/microdnf
    assert "config-manager --set-enabled crb" in text  # libvirt-devel is in Stream 9's CRB
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', text).group(1)
    assert "ansible-core>=2.17" in refs and "ansible-runner" in refs
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=2.17.0"  # the same floor as the EE's ansible-core
    # the compile packages go in the builder stage, the run-time ones in the final image
    assert "bindep -b compile" in (context / "_build" / "scripts" / "assemble").read_text()


def test_context_carries_the_repository_files(context):
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["community.libvirt"]
    deps = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    assert galaxy["collections"][0]["version"] == deps["community.libvirt"]


def test_every_pip_requirement_has_its_build_needs_declared():
    assert sorted(_requirement_names()) == sorted(BUILD_NEEDS)


@pytest.mark.parametrize("platform,profiles", [("rpm", RPM), ("dpkg", DPKG)])
def test_bindep_covers_build_and_run_needs(context, platform, profiles):
    run = set(_bindep(context, profiles))
    compile_ = set(_bindep(context, profiles + ["compile"]))
    for requirement, needs in BUILD_NEEDS.items():
        missing = sorted(set(needs[platform]) - compile_)
        assert not missing, f"{requirement} on {platform}: bindep -b compile lacks {missing}"
    assert set(RUN_NEEDS[platform]) <= run, sorted(run)
    build_only = {p for needs in BUILD_NEEDS.values() for p in needs[platform]}
    assert not build_only & run, f"build packages in the final image: {sorted(build_only & run)}"
    # nothing of the other platform leaks in
    other = "dpkg" if platform == "rpm" else "rpm"
    foreign = {p for needs in BUILD_NEEDS.values() for p in needs[other]} | set(RUN_NEEDS[other])
    assert not (compile_ & foreign) - {"gcc"}, sorted(compile_ & foreign)
