# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared redaction of config text and diffs (_fleet.redact_text / redact_diff) and the
xen_domain converger's diff of a file that holds an older SPICE password."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils import _fleet, _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._xen_domain import DomainConverger
from ansible_collections.vman.lifecycle.plugins.module_utils._xl import XlToolstack

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"


def test_redact_text_masks_secret_lines_and_keeps_the_rest():
    text = ('name = "o-h"\nspicepasswd = "s3cret"\n  root_password: hunter2\n'
            "passthrough = 1\nvncpasswd='x'\n# password = comment\n" + KEY + "memory = 1024")
    got = _fleet.redact_text(text)
    assert "s3cret" not in got and "hunter2" not in got and "b3BlbnNzaC1rZXk" not in got
    assert 'spicepasswd = "********"' in got and "  root_password: ********" in got
    assert "vncpasswd='********'" in got
    assert 'name = "o-h"\n' in got and "passthrough = 1\n" in got and got.endswith("memory = 1024")
    assert "# password = comment\n" in got  # a comment is not a setting
    assert _fleet.redact_text(None) is None and _fleet.redact_text("") == ""


def test_redact_diff_covers_both_sides_text_and_dicts():
    diffs = [{"before_header": "a", "before": 'spicepasswd = "old"\n', "after": 'spicepasswd = "new"\n'},
             {"before": {"spec": {"spicepasswd": "old", "memory": 1}}, "after": {"token": "t"}}]
    got = _fleet.redact_diff(diffs)
    assert got[0] == {"before_header": "a", "before": 'spicepasswd = "********"\n',
                      "after": 'spicepasswd = "********"\n'}
    assert got[1] == {"before": {"spec": {"memory": 1}}, "after": {}}
    assert diffs[0]["before"] == 'spicepasswd = "old"\n'  # the input is not changed


def test_xen_domain_diff_hides_the_old_files_password(tmp_path):
    def spec(password):
        # state absent below needs no password: spice_unauthenticated lets the spec validate
        return _spec.normalize_all([{"org": "o", "name": "h", "builder": "hvm", "spice": True,
                                     "spicepasswd": password, "spice_unauthenticated": password is None,
                                     "os": {"type": "debian", "version": "12"},
                                     "interfaces": [{}]}],
                                   {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}, "6.1")
    conv = DomainConverger(str(tmp_path / "vms"), XlToolstack("/nonexistent/xl"), manager="xl",
                           purge=True)
    conv.converge(spec("old-pw-A"))
    _results, diffs = conv.converge(spec("new-pw-B"))
    _results, gone = conv.converge(spec(None), "absent")
    for diff in diffs + gone:
        for side in ("before", "after"):
            assert "old-pw-A" not in diff[side] and "new-pw-B" not in diff[side]
    assert 'spicepasswd = "********"' in diffs[0]["before"]
