"""A fault-injecting proxy on loopback, in front of a private registry.

A flaky registry, made on purpose and made the same way every time: the
proxy passes every byte through, except for the requests its ``Fault`` rules
pick (by method and path, the first ``times`` of them, or every ``every``-th),
which it answers itself with an HTTP error or a connection reset. It reads
just enough HTTP to find where each request starts (request heads, bodies by
Content-Length or chunks); responses are passed through untouched. A
connection that does not speak plain HTTP (dockerd tries TLS first on an
insecure registry) is passed through whole.

dockerd treats 127.0.0.0/8 as an insecure registry, so a proxy on
127.0.0.1:PORT is used over plain HTTP, like the registry behind it.

    with FlakyProxy(registry.port, [Fault("PUT", "/manifests/", times=1)]) as proxy:
        ...  # push to proxy.address; proxy.injected says what was failed
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    429: "Too Many Requests",
}


@dataclass
class Fault:
    """Fail requests whose method matches ``method`` (a regex, whole) and whose
    path matches ``path`` (a regex, searched).

    ``times=K`` fails the first K of them, ``every=N`` every N-th (the N-th,
    2N-th, …); with neither, all. ``status`` is the HTTP status answered, or
    0 for a connection reset (RST) instead of an answer.
    """

    method: str
    path: str
    times: int | None = None
    every: int | None = None
    status: int = 503
    seen: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        return bool(re.fullmatch(self.method, method) and re.search(self.path, path))

    def strikes(self) -> bool:
        """Count one matching request; whether to fail it."""
        self.seen += 1
        if self.times is not None:
            hit = self.failed < self.times
        elif self.every is not None:
            hit = self.seen % self.every == 0
        else:
            hit = True
        self.failed += hit
        return hit


class FlakyProxy:
    """Listen on a free loopback port and forward to 127.0.0.1:``upstream_port``."""

    def __init__(
        self, upstream_port: int, faults: list[Fault] | None = None, host: str = "127.0.0.1"
    ):
        self.upstream = (host, upstream_port)
        self.faults = list(faults or [])
        #: every request seen: (method, path, what was done: "passed", "503", "reset")
        self.requests: list[tuple[str, str, str]] = []
        self.times: list[float] = []  # when each request came, time.monotonic()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(
            target=self._accept, daemon=True, name=f"flaky-proxy-{self.port}"
        )
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def injected(self) -> list[tuple[str, str, str]]:
        """The requests the proxy failed on purpose."""
        with self._lock:
            return [r for r in self.requests if r[2] != "passed"]

    def stop(self) -> None:
        """Stop listening and cut every open connection; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sockets = list(self._sockets)
        for sock in [self._listener, *sockets]:
            _close(sock)
        self._thread.join(5)

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FlakyProxy({self.address} -> {self.upstream[0]}:{self.upstream[1]})"

    # -- internals ---------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._sockets.add(sock)
            return True

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            hit = fault is not None and fault.strikes()
            outcome = ("reset" if fault.status == 0 else str(fault.status)) if hit else "passed"
            self.requests.append((method, path, outcome))
            self.times.append(time.monotonic())
            return fault if hit else None

    def _serve(self, client: socket.socket) -> None:
        if not self._track(client):
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        self._track(upstream)
        send_lock = threading.Lock()  # the client socket is written by two threads
        pump = threading.Thread(target=_pipe, args=(upstream, client, send_lock), daemon=True)
        pump.start()
        reader = client.makefile("rb")
        try:
            first = reader.peek(1)[:1]
            if not first.isalpha():
                # TLS (dockerd tries https first) or anything else: pass it all.
                while True:
                    chunk = reader.read1(65536)
                    if not chunk:
                        break
                    upstream.sendall(chunk)
                return
            while True:
                head = _read_head(reader)
                if head is None:
                    break
                method, path = head[0].split(b" ")[:2]
                fault = self._decide(method.decode(), path.decode("latin-1"))
                if fault is not None:
                    if fault.status == 0:
                        # The reader holds the socket open: close it first,
                        # or the client would wait instead of seeing the reset.
                        reader.close()
                        _reset(client)
                    else:
                        _skip_body(reader, head)
                        with send_lock:
                            client.sendall(_error_response(fault.status))
                        _close(client)
                    _close(upstream)
                    return
                upstream.sendall(b"".join(head))
                _forward_body(reader, head, upstream)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            reader.close()
            pump.join(30)
            _close(client)
            _close(upstream)
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(upstream)


def _pipe(source: socket.socket, target: socket.socket, lock: threading.Lock) -> None:
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                break
            with lock:
                target.sendall(chunk)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _read_head(reader) -> list[bytes] | None:
    """The request line and header lines (each with its CRLF), the empty line
    last; None at the end of the connection."""
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return lines


def _header(head: list[bytes], name: bytes) -> bytes | None:
    for line in head[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _body_chunks(reader, head: list[bytes]):
    """The bytes of the request body as they arrive, framing included."""
    if (_header(head, b"transfer-encoding") or b"").lower() == b"chunked":
        while True:
            size_line = reader.readline(65536)
            if not size_line:
                return
            yield size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = reader.readline(65536)
                    if not line:
                        return
                    yield line
                    if line in (b"\r\n", b"\n"):
                        return
            left = size + 2  # the data and its CRLF
            while left:
                data = reader.read(min(left, 65536))
                if not data:
                    return
                left -= len(data)
                yield data
        return
    left = int(_header(head, b"content-length") or b"0")
    while left:
        data = reader.read(min(left, 65536))
        if not data:
            return
        left -= len(data)
        yield data


def _forward_body(reader, head, upstream: socket.socket) -> None:
    for data in _body_chunks(reader, head):
        upstream.sendall(data)


def _skip_body(reader, head) -> None:
    for _ in _body_chunks(reader, head):
        pass


def _error_response(status: int) -> bytes:
    reason = _REASONS.get(status, "Error")
    body = (
        b'{"errors":[{"code":"UNAVAILABLE","message":"failed on purpose by devkit.flaky_proxy"}]}'
    )
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: 'connection reset by peer'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # no shutdown() first: that would send a FIN
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    """Shut down (which wakes a thread blocked reading it), then close."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
