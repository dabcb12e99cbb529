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

import email.utils
import hashlib
import hmac
import http
import http.client
import io
import ipaddress
import json
import re
import secrets
import selectors
import socket
import time
import urllib.parse

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError

WHO = "install_callback"
SERVER_NAME = "vman-install-callback"
#: Limits of the listener (documented in the install_callback module's notes).
MAX_BODY = 4096          # bytes of a request body; a larger one is refused (413) unread
MAX_HEADER = 8192        # bytes of the request line and header fields (431 beyond)
REQUEST_TIMEOUT = 5.0    # seconds from a connection's accept to the end of its body (408)
MAX_CONNECTIONS = 128    # open at once; one more evicts the oldest unfinished (503)
LINGER = 1.0             # seconds to flush an answer and drain the rest of a refused body
BACKLOG = 512            # pending connects the kernel queues (capped by net.core.somaxconn)
MAX_LOG = 1000           # entries of Listener.log; accepted calls are always kept
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
    token = secrets.token_urlsafe(32)
    # revoke and add in one transaction (re-checking the status under the VM's lock):
    # concurrent issues leave exactly one valid token
    store.replace_token(vm, hash_token(token), expires_at, ",".join(ips), status=lc.INSTALLING)
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
    # spending the token and the status change are one transaction: a crash between them
    # cannot leave the VM installing with its only token spent
    if store.spend_token(match["id"], vm, lc.POSTINSTALL, lc.ADMIN, who=WHO,
                         why=f"install callback from {peer}") is None:
        return Verdict(403, vm, "token already used", peer)
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


_REQUEST_LINE = re.compile(r"^([A-Z]{1,16}) ([\x21-\x7e]{1,2048}) HTTP/1\.([01])$")
_HEADER_LINE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$")
_READ, _WRITE, _LINGER = "read", "write", "linger"


class _Conn:
    """One client connection of the listener: what it sent so far, what it is owed, its deadlines."""

    __slots__ = ("sock", "peer", "started", "deadline", "state", "buf", "head", "vm",
                 "length", "out")

    def __init__(self, sock, peer, now, request_timeout):
        self.sock, self.peer, self.started = sock, peer, now
        self.deadline = now + request_timeout  # headers AND body, from accept on
        self.state = _READ
        self.buf = b""
        self.head = None     # (method, path, http minor version, headers) once the head is read
        self.vm = None
        self.length = 0
        self.out = b""


class _BadRequest(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _parse_head(raw):
    """``(method, path, minor version, headers)`` of a request head; _BadRequest when malformed."""
    lines = raw.decode("iso-8859-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if not match:
        raise _BadRequest(400, "malformed request line")
    if len(lines) > 101:
        raise _BadRequest(400, "too many header fields")
    for line in lines[1:]:
        if not _HEADER_LINE.fullmatch(line):
            raise _BadRequest(400, "malformed header field")
    fields = raw.partition(b"\r\n")[2]
    try:
        headers = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n" if fields else b"\r\n"))
    except (http.client.HTTPException, ValueError):
        raise _BadRequest(400, "malformed header fields") from None
    return match.group(1), match.group(2), int(match.group(3)), headers


def _content_length(headers):
    if headers.get("Transfer-Encoding") is not None:
        raise _BadRequest(411, "a Content-Length body is required (no Transfer-Encoding)")
    values = set((v or "").strip() for v in headers.get_all("Content-Length") or [])
    if not values:
        return 0
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise _BadRequest(400, "bad Content-Length")
    return int(values.pop())


def _response(code, reason):
    payload = json.dumps({"result": reason}).encode()
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    head = (f"HTTP/1.0 {code} {phrase}\r\n"
            f"Server: {SERVER_NAME}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + payload


class Listener:
    """Waits for the callbacks of ``vms`` on ``bind``:``port``.

    One thread serves every connection through a selector, so the store's connection is only
    ever used by the thread that calls :meth:`wait` (an SQLite connection may not be shared
    across threads) and verdicts are judged one at a time. Nobody can stall it: at most
    ``max_connections`` connections are open (a new one beyond that evicts the oldest
    unfinished one), each request must arrive whole (head and body) within
    ``request_timeout`` seconds of its connection, a head is at most ``MAX_HEADER`` bytes and
    a body at most ``max_body`` (larger is refused with 413 before it is read), and
    :meth:`wait` returns by its deadline whatever the connections do.
    """

    def __init__(self, store, vms, bind="0.0.0.0", port=8765, trusted_proxies=(),
                 request_timeout=REQUEST_TIMEOUT, max_connections=MAX_CONNECTIONS,
                 max_body=MAX_BODY):
        self.store = store
        self.expected = [validate_vm(vm) for vm in vms]
        self.trusted = canonical_ips(trusted_proxies, "trusted_proxies")
        self.bind, self.port = bind, port
        self.request_timeout = float(request_timeout)
        self.max_connections = int(max_connections)
        self.max_body = int(max_body)
        self.log = []
        self.log_dropped = 0
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

    def _record(self, verdict):
        if verdict.accepted or len(self.log) < MAX_LOG:
            self.log.append(verdict.as_dict())
        else:
            self.log_dropped += 1

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
        lsock = socket.socket(family, socket.SOCK_STREAM)
        sel = selectors.DefaultSelector()
        conns = {}
        try:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((self.bind, self.port))
            lsock.listen(BACKLOG)
            lsock.setblocking(False)
            sel.register(lsock, selectors.EVENT_READ, None)
            if on_ready:
                on_ready(lsock.getsockname())
            deadline = clock() + timeout
            while self.pending():
                left = deadline - clock()
                if left <= 0:
                    break
                now = time.monotonic()
                soonest = min((c.deadline for c in conns.values()), default=now + left)
                for key, mask in sel.select(max(0.0, min(left, soonest - now, 0.2))):
                    if key.data is None:
                        self._accept(lsock, sel, conns)
                    elif conns.get(key.data.sock.fileno()) is key.data:
                        self._serve(key.data, mask, sel, conns)
                    if not self.pending():
                        break
                self._expire(sel, conns)
        finally:
            for conn in list(conns.values()):
                if conn.state == _WRITE:
                    self._send(conn, sel, conns)   # flush an answer already given, once
                self._close(conn, sel, conns)
            sel.close()
            lsock.close()
        return self.pending()

    # -- the connections ----------------------------------------------------------------------

    def _accept(self, lsock, sel, conns):
        for _i in range(64):   # bounded, so a flood of connects cannot starve the others
            try:
                sock, address = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            if len(conns) >= self.max_connections and not self._evict(sel, conns):
                self._refuse(sock, address[0])
                sock.close()
                continue
            conn = _Conn(sock, address[0], time.monotonic(), self.request_timeout)
            conns[sock.fileno()] = conn
            sel.register(sock, selectors.EVENT_READ, conn)

    def _evict(self, sel, conns):
        """Make room for a new connection: close a finished one, else the oldest unfinished."""
        done = [c for c in conns.values() if c.state != _READ]
        if done:
            self._close(min(done, key=lambda c: c.started), sel, conns)
            return True
        oldest = min(conns.values(), key=lambda c: c.started, default=None)
        if oldest is None:
            return False
        self._refuse(oldest.sock, oldest.peer, oldest.vm)
        self._close(oldest, sel, conns)
        return True

    def _refuse(self, sock, peer, vm=None):
        """Answer 503 as far as the socket takes it at once (the caller closes it)."""
        verdict = Verdict(503, vm, "too many connections", canonical_peer(peer))
        self._record(verdict)
        try:
            sock.send(_response(verdict.code, verdict.reason))
        except OSError:
            pass

    def _close(self, conn, sel, conns):
        fd = conn.sock.fileno()
        if conns.get(fd) is conn:
            del conns[fd]
            sel.unregister(conn.sock)
        try:
            conn.sock.close()
        except OSError:
            pass

    def _expire(self, sel, conns):
        now = time.monotonic()
        for conn in [c for c in conns.values() if c.deadline <= now]:
            if conn.state == _READ:
                self._answer(conn, Verdict(408, conn.vm, f"request not complete within "
                                                         f"{self.request_timeout:g} s",
                                           canonical_peer(conn.peer)), sel, conns)
            else:
                self._close(conn, sel, conns)

    def _serve(self, conn, mask, sel, conns):
        if conn.state == _WRITE:
            if mask & selectors.EVENT_WRITE:
                self._send(conn, sel, conns)
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn, sel, conns)
            return
        if conn.state == _LINGER:
            return   # the answer is out; what the client still sends is dropped
        conn.buf += data
        try:
            verdict = self._progress(conn)
        except _BadRequest as exc:
            verdict = Verdict(exc.code, conn.vm, exc.reason, canonical_peer(conn.peer))
        except Exception as exc:  # a store failure on one call must not end the wait of all
            verdict = Verdict(500, conn.vm, f"internal error ({type(exc).__name__})",
                              canonical_peer(conn.peer))
        if verdict is not None:
            self._answer(conn, verdict, sel, conns)

    def _progress(self, conn):
        """The verdict once the request is whole (or refused); None while more is to come."""
        if conn.head is None:
            end = conn.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buf) > MAX_HEADER:
                    raise _BadRequest(431, "request head too large")
                return None
            if end > MAX_HEADER:
                raise _BadRequest(431, "request head too large")
            raw, conn.buf = conn.buf[:end], conn.buf[end + 4:]
            conn.head = _parse_head(raw)
            method, path, minor, headers = conn.head
            if method != "POST":
                raise _BadRequest(405, "only POST")
            parts = path.split("?")[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "callback" or not _VM_NAME.match(parts[1]):
                raise _BadRequest(404, "unknown path")
            conn.vm = parts[1]
            conn.length = _content_length(headers)
            if conn.length > self.max_body:
                raise _BadRequest(413, "body too large")
            if (minor == 1 and len(conn.buf) < conn.length
                    and (headers.get("Expect") or "").strip().lower() == "100-continue"):
                try:
                    conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    pass
        if len(conn.buf) < conn.length:
            return None
        headers = conn.head[3]
        body = conn.buf[:conn.length]
        return self.handle(conn.vm, _token_from(headers, body), conn.peer,
                           headers.get("X-Forwarded-For"))

    def _answer(self, conn, verdict, sel, conns):
        self._record(verdict)
        conn.buf, conn.head = b"", None
        conn.out = _response(verdict.code, verdict.reason)
        conn.state = _WRITE
        conn.deadline = time.monotonic() + LINGER
        sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._send(conn, sel, conns)

    def _send(self, conn, sel, conns):
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn, sel, conns)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            return
        # answered: half-close and drain what the client still sends for a moment, so that
        # closing with unread data does not reset the connection before it read the answer
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn, sel, conns)
            return
        if conns.get(conn.sock.fileno()) is conn:
            conn.state = _LINGER
            sel.modify(conn.sock, selectors.EVENT_READ, conn)


def fail_pending(store, vms, timeout, check=False):
    """Move VMs that never called back to ``failed`` with the reason; return their names."""
    failed = []
    for vm in vms:
        plan = store.change_status(vm, lc.FAILED, lc.ADMIN, who=WHO, check=check,
                                   why=f"no install callback within {timeout:g} s")
        if plan.changed:
            failed.append(vm)
    return failed
