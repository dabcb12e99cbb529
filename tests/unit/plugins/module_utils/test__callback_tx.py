# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install callback tokens against a real store file (and PostgreSQL under ``-m real``):
spending a token and moving the VM are one transaction (a kill -9 between the two steps
leaves neither), and concurrent issues leave exactly one valid token."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback as cb
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import Store

VM_IP = "192.0.2.10"
VM = "txvm"


@pytest.fixture
def vm(store):
    store.create_vms([{"name": VM, "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}])
    return VM


def _valid(store, vm):
    now = store.clock()
    return [r for r in store.tokens(vm) if r["used_at"] is None and r["expires_at"] > now]


def _kill_between_spend_and_move(url, clock, vm, token):
    """Fork a child that runs ``verify`` and is killed (SIGKILL) after the token is spent and
    before the VM's status is written; return the child's wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            def die(*_args, **_kwargs):
                os.kill(os.getpid(), signal.SIGKILL)
            Store._apply = die
            child = open_store(url, clock=clock)
            cb.verify(child, vm, token, VM_IP)
        finally:
            os._exit(3)  # reached only when the kill point was never hit
    _pid, status = os.waitpid(pid, 0)
    return status


def test_crash_between_spending_the_token_and_moving_the_vm(url, clock, store, vm):
    token, _exp = cb.issue_token(store, vm, [VM_IP], 600)
    status = _kill_between_spend_and_move(url, clock, vm, token)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    # the store is fully before (token valid, installing), never half-way
    after = open_store(url, clock=clock)
    try:
        row = after.get_vm(vm)
        spent = [r for r in after.tokens(vm) if r["used_at"] is not None]
        assert (row["status"], len(spent)) == ("installing", 0)
        # the installer's retry is accepted
        verdict = cb.verify(after, vm, token, VM_IP)
        assert verdict.accepted, verdict.reason
        assert after.get_vm(vm)["status"] == "postinstall"
        assert [r["used_at"] is not None for r in after.tokens(vm)] == [True]
        assert cb.verify(after, vm, token, VM_IP).code == 403
    finally:
        after.close()


def test_spend_token_is_all_or_nothing_on_an_illegal_transition(store, vm):
    token, _exp = cb.issue_token(store, vm, [VM_IP], 600)
    store.change_status(vm, "postinstall", "admin")
    store.change_status(vm, "preallocated", "admin")
    row = store.tokens(vm)[0]
    with pytest.raises(Exception, match="preallocated"):
        store.spend_token(row["id"], vm, "postinstall", "admin")
    assert store.tokens(vm)[0]["used_at"] is None  # rolled back with the failed transition
    assert store.get_vm(vm)["status"] == "preallocated"


@pytest.mark.parametrize("issuers", [8])
def test_concurrent_issues_leave_exactly_one_valid_token(url, clock, store, vm, monkeypatch, issuers):
    """Each thread has its own connection to the same store; a barrier at token generation
    makes every issuer reach it before any of them writes (the window of the old
    read-revoke-then-add sequence), then they race for the store."""
    barrier = threading.Barrier(issuers, timeout=30)
    real = cb.secrets.token_urlsafe

    def synced(nbytes):
        value = real(nbytes)
        barrier.wait()
        return value
    first, _exp = cb.issue_token(store, vm, [VM_IP], 600)  # an earlier token, revoked too
    monkeypatch.setattr(cb.secrets, "token_urlsafe", synced)

    issued, errors = [], []

    def issue():
        own = open_store(url, clock=clock)
        try:
            issued.append(cb.issue_token(own, vm, [VM_IP], 600)[0])
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=issue) for dummy in range(issuers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(issued) == issuers

    assert len(_valid(store, vm)) == 1
    accepted = [t for t in issued + [first] if cb.verify(store, vm, t, VM_IP).accepted]
    assert len(accepted) == 1
    assert store.get_vm(vm)["status"] == "postinstall"
