"""A minimal HTTP/1.1 keep-alive client on an asyncio protocol, for load generation only.

Why not httpx: at saturation httpx spent about 0.8 ms of CPU per request in the load generator,
as much as the server spends answering it, and both share the same 2 CPUs: the benchmark measured
its own client. This client does only what the benchmark needs (one connection per labeler,
requests in sequence, responses with Content-Length, as uvicorn sends them) at a few tens of µs
a request. It is not part of the product and no test relies on it.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit


class HTTPFailure(Exception):
    """The connection failed, closed, or the response was late or unreadable."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPFailure(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).split(b"\r\n")
        length = None
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        if length is None:
            self._fail("response without Content-Length")
            return
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[0].split(b" ", 2)[1])
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def _fail(self, why: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPFailure(why))
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """One keep-alive connection; ``post`` sends one request and returns (status, body)."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in
                                     {"Host": f"{self.host}:{self.port}", **headers}.items()).encode()
        self.timeout = timeout
        self.connection: _Connection | None = None

    async def _connect(self) -> _Connection:
        if self.connection is None or self.connection.closed:
            loop = asyncio.get_running_loop()
            _, self.connection = await loop.create_connection(_Connection, self.host, self.port)
        return self.connection

    async def post(self, path: str, body: bytes = b"") -> tuple[int, bytes]:
        connection = await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        connection.waiter = waiter
        request = (b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.fixed_headers
                   + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                   + b"\r\n\r\n" + body)
        assert connection.transport is not None
        connection.transport.write(request)
        timer = loop.call_later(self.timeout, connection._fail, "timed out")
        try:
            return await waiter
        finally:
            timer.cancel()
            connection.waiter = None

    async def aclose(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()
