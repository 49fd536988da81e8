"""TestClient: drive an app over real sockets from plain (sync) tests.

The app's server runs on 127.0.0.1 on a free port, in a background thread with its own event
loop. HTTP requests and WebSocket sessions go over real TCP connections, and every receive
has a timeout, so a test fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import socket
import threading
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
import orjson

from roost.protocol.connection import WebSocketConnection
from roost.protocol.errors import RoostError, WebSocketDisconnect
from roost.protocol.events import Closed, Event
from roost.protocol.handshake import accept_key
from roost.protocol.http import Headers
from roost.typed import JSON, Codec

if TYPE_CHECKING:
    from types import TracebackType

    from roost.app import Roost
    from roost.server.serve import Server

__all__ = ["TestClient", "TestResponse", "WebSocketRejected", "WebSocketTestSession"]

DEFAULT_TIMEOUT = 5.0


class WebSocketRejected(RoostError):
    """The server refused the WebSocket handshake with an HTTP response."""

    def __init__(self, status_code: int, headers: Headers, body: bytes) -> None:
        super().__init__(f"handshake rejected with {status_code}: {body[:200]!r}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


class TestResponse:
    """An HTTP response received by the TestClient."""

    __test__ = False

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.content)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code}>"


class WebSocketTestSession:
    """A WebSocket connection to the app; use it as a context manager.

    Every ``receive*`` waits at most ``timeout`` seconds and raises TimeoutError after.
    ``send_message``/``receive_message`` speak the endpoint's typed messages in its ``codec``.
    """

    __test__ = False

    def __init__(
        self,
        sock: socket.socket,
        leftover: bytes,
        subprotocol: str | None,
        timeout: float,
        codec: Codec = JSON,
    ) -> None:
        self._sock = sock
        self.codec = codec
        self.timeout = timeout
        self.subprotocol = subprotocol
        self._conn = WebSocketConnection(client=True, max_message_size=64 * 1024 * 1024)
        self._events: deque[Event] = deque()
        self.close_code: int | None = None
        self.close_reason = ""
        if leftover:
            self._feed(leftover)

    def __enter__(self) -> WebSocketTestSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _feed(self, data: bytes) -> None:
        self._events.extend(self._conn.receive_data(data))
        out = self._conn.data_to_send()
        if out:
            self._sock.sendall(out)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise WebSocketDisconnect(1006, str(exc)) from None

    def send_text(self, data: str) -> None:
        """Send a text message."""
        self._send(self._conn.send_text(data))

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        self._send(self._conn.send_binary(data))

    def send_json(self, data: Any) -> None:
        """Send ``data`` as JSON in a text message."""
        self.send_text(orjson.dumps(data).decode())

    def send_message(self, value: Any, *, ref: int | str | None = None) -> None:
        """Send the typed ``value`` (a msgspec Struct, a dict...) encoded with ``codec``; with
        ``ref``, as a request whose answer is a ``Reply`` or an ``Error`` carrying ``ref``."""
        if ref is not None:
            fields = msgspec.to_builtins(value)
            if not isinstance(fields, dict):
                raise TypeError("a message sent with ref must encode as an object")
            value = {**fields, "ref": ref}
        data = self.codec.encode(value)
        if isinstance(data, str):
            self.send_text(data)
        else:
            self.send_bytes(data)

    def receive_message(self, into: Any = Any, timeout: float | None = None) -> Any:
        """The next message decoded with ``codec`` into ``into`` (for example
        ``Reply | Error | MyMessage``; by default plain dicts and lists)."""
        return self.codec.decoder(into)(self.receive(timeout))

    def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message (str or bytes); WebSocketDisconnect once the server closed."""
        wait = self.timeout if timeout is None else timeout
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, str | bytes):
                    return event
                if isinstance(event, Closed):
                    self.close_code, self.close_reason = event.code, event.reason
                    raise WebSocketDisconnect(event.code, event.reason)
            if self.close_code is not None:
                raise WebSocketDisconnect(self.close_code, self.close_reason)
            self._sock.settimeout(wait)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no WebSocket message within {wait} s") from None
            except OSError:
                data = b""
            if not data:
                self._events.extend(self._conn.receive_eof())
            else:
                self._feed(data)

    def receive_text(self, timeout: float | None = None) -> str:
        """The next message, which must be text."""
        message = self.receive(timeout)
        if not isinstance(message, str):
            raise AssertionError(f"expected a text message, got {message!r}")
        return message

    def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next message, which must be binary."""
        message = self.receive(timeout)
        if not isinstance(message, bytes):
            raise AssertionError(f"expected a binary message, got {message!r}")
        return message

    def receive_json(self, timeout: float | None = None) -> Any:
        """The next message parsed as JSON."""
        return orjson.loads(self.receive(timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent), waiting briefly for the server's close frame."""
        if self._sock.fileno() == -1:
            return
        try:
            data = self._conn.send_close(code, reason)
            if data:
                self._sock.sendall(data)
                while self.close_code is None:
                    try:
                        self.receive(timeout=1.0)
                    except (WebSocketDisconnect, TimeoutError):
                        break
        except OSError:
            pass
        finally:
            self._sock.close()


class TestClient:
    """Run ``app`` on 127.0.0.1 in a background thread and talk to it over real sockets.

    Use it as a context manager (or call ``close()``); ``timeout`` (5 s) bounds every
    request and every WebSocket receive.
    """

    __test__ = False

    def __init__(self, app: Roost, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self.port = 0

    def __enter__(self) -> TestClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the server (done on first use)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            from roost.process import new_event_loop

            loop = new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(self.app.create_server("127.0.0.1", 0))
                self.port = self._server.port
            except BaseException as exc:  # reported to the caller's thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="roost-testclient", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError("the app did not start")
        if failure:
            raise failure[0]

    def close(self) -> None:
        """Shut the app down gracefully and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.app.shutdown(), loop)
        try:
            future.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._loop = self._thread = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
    ) -> TestResponse:
        """Send one HTTP request and return the whole response."""
        self.start()
        body: bytes | None = None
        all_headers = dict(headers or {})
        if json is not None:
            body = orjson.dumps(json)
            all_headers.setdefault("content-type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params, doseq=True)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            reply = conn.getresponse()
            content = reply.read()
            return TestResponse(reply.status, Headers(reply.getheaders()), content)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """POST to ``path``."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        """PUT ``path``."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        """PATCH ``path``."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)

    def websocket_connect(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        subprotocols: list[str] | None = None,
        timeout: float | None = None,
    ) -> WebSocketTestSession:
        """Open a WebSocket to ``path``; raises WebSocketRejected if the server refuses."""
        self.start()
        wait = self.timeout if timeout is None else timeout
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=wait)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise WebSocketDisconnect(1006, "connection closed during the handshake")
                buf += chunk
        except TimeoutError:
            sock.close()
            raise TimeoutError(f"no handshake response within {wait} s") from None
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        reply_headers = Headers(
            (n.strip(), v.strip()) for n, _, v in (h.partition(":") for h in header_lines)
        )
        if status != 101:
            length = int(reply_headers.get("content-length") or 0)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            sock.close()
            raise WebSocketRejected(status, reply_headers, rest[:length])
        if reply_headers.get("sec-websocket-accept") != accept_key(key):
            sock.close()
            raise WebSocketDisconnect(1002, "bad Sec-WebSocket-Accept")
        endpoint = self.app.routes.websockets.match("GET", path.partition("?")[0])[0]
        codec = endpoint.messages.codec if endpoint is not None else JSON
        subprotocol = reply_headers.get("sec-websocket-protocol")
        return WebSocketTestSession(sock, rest, subprotocol, wait, codec)
