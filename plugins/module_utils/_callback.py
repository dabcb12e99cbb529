# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install callback: one-time tokens and the controller-side listener (private, no stability promise).

A token is issued per VM and handed to its installer; only its SHA-256 is stored, with an
expiry and the source addresses the call may come from. When the installer is done it calls
``POST /callback/<vm>`` with the token (``Authorization: Bearer <token>`` or a ``token`` form
or JSON field, never in the URL, where logs would keep it). An accepted call moves the VM
``installing`` -> ``postinstall``. Nothing here ever logs or returns a token after issuing it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import ipaddress
import json
import re
import secrets
import socket
import time
import urllib.parse

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError

WHO = "install_callback"
MAX_BODY = 4096
_VM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: no "name\n"


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256); a token has 256 random bits, so no salt is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def canonical_ips(values, field, obj="install_callback") -> list:
    """Addresses in canonical text form; raise ValidationError on a bad one."""
    out = []
    for value in values or []:
        try:
            out.append(str(ipaddress.ip_address(str(value).strip())))
        except ValueError:
            raise ValidationError(obj, field, value, "not an IPv4 or IPv6 address") from None
    return out


def canonical_peer(peer):
    """The caller's address as text; an IPv4-mapped IPv6 address (dual-stack socket) as IPv4."""
    if not peer:
        return peer
    address = ipaddress.ip_address(peer.split("%")[0])
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def validate_vm(name, obj="install_callback") -> str:
    """Return ``name`` when it can be a path segment of the callback URL."""
    if not isinstance(name, str) or not _VM_NAME.match(name):
        raise ValidationError(obj, "vm", name, "must match " + _VM_NAME.pattern)
    return name


def vm_status(store, vm):
    """The VM's status; StateError when the store has no such VM."""
    row = store.get_vm(vm)
    if row is None:
        raise StateError(f"VM {vm}: not in the lifecycle store")
    return row["status"]


def issue_token(store, vm, source_ips, ttl, check=False):
    """Issue a new token for ``vm``; return ``(token or None in check mode, expires_at)``.

    Earlier unused tokens of the VM are revoked (marked used), so only the newest one works.
    """
    validate_vm(vm)
    ips = canonical_ips(source_ips, "source_ip")
    if not ips:
        raise ValidationError(vm, "source_ip", source_ips,
                              "the address the callback comes from is required")
    if ttl <= 0:
        raise ValidationError(vm, "ttl", ttl, "must be positive")
    status = vm_status(store, vm)
    if status != lc.INSTALLING:
        raise StateError(f"VM {vm}: status is {status}, a callback token is only issued "
                         f"while it is {lc.INSTALLING}")
    expires_at = store.clock() + ttl
    if check:
        return None, expires_at
    for row in store.tokens(vm):
        if row["used_at"] is None:
            store.use_token(row["id"])
    token = secrets.token_urlsafe(32)
    store.add_token(vm, hash_token(token), expires_at, ",".join(ips))
    return token, expires_at


class Verdict:
    """Outcome of one callback: HTTP code, VM, a reason safe to log (never the token)."""

    __slots__ = ("code", "vm", "reason", "source")

    def __init__(self, code, vm, reason, source):
        self.code, self.vm, self.reason, self.source = code, vm, reason, source

    @property
    def accepted(self):
        return self.code == 200

    def as_dict(self):
        return {"vm": self.vm, "code": self.code, "reason": self.reason, "source": self.source}


def source_allowed(peer, allowed, trusted_proxies, forwarded_for=None):
    """Whether a call from ``peer`` may be the VM whose addresses are ``allowed``.

    A direct call must come from one of ``allowed``. A call from a trusted proxy or NAT
    address is accepted as the VM's; when the proxy passes ``X-Forwarded-For``, the
    address it appended (the last one) must be one of ``allowed``.
    """
    if peer in allowed:
        return True
    if peer not in trusted_proxies:
        return False
    if forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last)) in allowed
        except ValueError:
            return False
    return True


def verify(store, vm, token, peer, trusted_proxies=(), forwarded_for=None, expected=None):
    """Check one callback and, when it is good, spend the token and move the VM to postinstall."""
    if expected is not None and vm not in expected:
        return Verdict(404, vm, "not a VM this listener waits for", peer)
    if not token:
        return Verdict(401, vm, "no token", peer)
    presented = hash_token(token)
    match = None
    for row in store.tokens(vm):
        # constant-time on every row, no early exit
        if hmac.compare_digest(presented, row["token_hash"]):
            match = row
    if match is None:
        return Verdict(403, vm, "wrong token", peer)
    if match["used_at"] is not None:
        return Verdict(403, vm, "token already used or revoked", peer)
    if match["expires_at"] <= store.clock():
        return Verdict(403, vm, "token expired", peer)
    allowed = (match["source_ip"] or "").split(",")
    if not source_allowed(peer, allowed, trusted_proxies, forwarded_for):
        return Verdict(403, vm, f"source {peer} is not the VM's ({', '.join(allowed)}) "
                                "nor a trusted proxy", peer)
    if not store.use_token(match["id"]):
        return Verdict(403, vm, "token already used", peer)
    store.change_status(vm, lc.POSTINSTALL, lc.ADMIN, who=WHO,
                        why=f"install callback from {peer}")
    return Verdict(200, vm, "accepted", peer)


def _token_from(headers, body):
    auth = headers.get("Authorization") or ""
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):].strip()
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
    text = body.decode("utf-8", "replace")
    if ctype == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data.get("token") if isinstance(data, dict) and isinstance(data.get("token"), str) else None
    values = urllib.parse.parse_qs(text).get("token")
    return values[0] if values else None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "vman-install-callback"
    sys_version = ""
    timeout = 10

    def do_POST(self):  # noqa: N802 (http.server's naming)
        listener = self.server.listener
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] != "callback" or not _VM_NAME.match(parts[1]):
            self._answer(Verdict(404, None, "unknown path", self.client_address[0]))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._answer(Verdict(413, parts[1], "body too large", self.client_address[0]))
            return
        body = self.rfile.read(length) if length else b""
        self._answer(listener.handle(parts[1], _token_from(self.headers, body),
                                     self.client_address[0], self.headers.get("X-Forwarded-For")))

    def do_GET(self):  # noqa: N802
        self._answer(Verdict(405, None, "only POST", self.client_address[0]))

    def _answer(self, verdict):
        self.server.listener.log.append(verdict.as_dict())
        payload = json.dumps({"result": verdict.reason}).encode()
        self.send_response(verdict.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002
        # the default handler writes the request line to stderr; our own log has what matters
        return


class Listener:
    """Waits for the callbacks of ``vms`` on ``bind``:``port`` (one thread, one store connection)."""

    def __init__(self, store, vms, bind="0.0.0.0", port=8765, trusted_proxies=()):
        self.store = store
        self.expected = [validate_vm(vm) for vm in vms]
        self.trusted = canonical_ips(trusted_proxies, "trusted_proxies")
        self.bind, self.port = bind, port
        self.log = []
        self.called_back = []

    def handle(self, vm, token, peer, forwarded_for=None):
        """Judge one call (also used directly by tests without a socket)."""
        peer = canonical_peer(peer)
        if vm in self.called_back:
            return Verdict(403, vm, "already called back", peer)
        try:
            verdict = verify(self.store, vm, token, peer, self.trusted, forwarded_for, self.expected)
        except StateError as exc:
            verdict = Verdict(409, vm, str(exc), peer)
        if verdict.accepted:
            self.called_back.append(vm)
        return verdict

    def pending(self):
        return [vm for vm in self.expected if vm not in self.called_back]

    def wait(self, timeout, clock=time.monotonic, on_ready=None):
        """Serve until every expected VM called back or ``timeout`` seconds passed.

        VMs that are already past ``installing`` count as called back (a rerun). Returns the
        VMs still pending; the caller decides what happens to them.
        """
        for vm in self.expected:
            if vm_status(self.store, vm) != lc.INSTALLING:
                self.called_back.append(vm)
        if not self.pending():
            return []
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        server_cls = type("_Server", (http.server.HTTPServer,), {"address_family": family})
        server = server_cls((self.bind, self.port), _Handler)
        server.listener = self
        server.timeout = 0.2
        if on_ready:
            on_ready(server.server_address)
        deadline = clock() + timeout
        try:
            while self.pending() and clock() < deadline:
                server.handle_request()
        finally:
            server.server_close()
        return self.pending()


def fail_pending(store, vms, timeout, check=False):
    """Move VMs that never called back to ``failed`` with the reason; return their names."""
    failed = []
    for vm in vms:
        plan = store.change_status(vm, lc.FAILED, lc.ADMIN, who=WHO, check=check,
                                   why=f"no install callback within {timeout:g} s")
        if plan.changed:
            failed.append(vm)
    return failed
