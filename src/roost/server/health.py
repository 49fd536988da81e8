"""The liveness and readiness endpoints, answered by the server before the app sees the
request (no routes, hooks, middlewares or CORS apply to them).

- Liveness (``/livez`` by default): 200 ``{"status":"live"}`` whenever the process answers.
- Readiness (``/readyz`` by default): 200 ``{"status":"ready"}`` once the app has started
  (its startup handlers have run), then 503 ``{"status":"draining"}`` from the moment a
  shutdown is asked for (SIGTERM: before any WebSocket gets its 1001) until the process exits.
  Before it is ready: 503 ``{"status":"starting"}``.

Both answer GET and HEAD (other methods get 405), with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LIVENESS", "READINESS", "Readiness", "health_paths", "health_response"]

Readiness = Literal["starting", "ready", "draining"]
LIVENESS = "liveness"
READINESS = "readiness"

_JSON = [("content-type", "application/json"), ("cache-control", "no-store")]
_ALLOWED = ("GET", "HEAD")


def health_paths(liveness: str | None, readiness: str | None) -> dict[str, str]:
    """path -> ``LIVENESS`` or ``READINESS``, for the endpoints switched on (not None)."""
    paths: dict[str, str] = {}
    if liveness is not None:
        paths[liveness] = LIVENESS
    if readiness is not None:
        paths[readiness] = READINESS
    return paths


def health_response(
    kind: str, method: str, readiness: Readiness
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) answering ``method`` on the ``kind`` endpoint."""
    if method not in _ALLOWED:
        return 405, [("allow", "GET, HEAD"), ("content-type", "text/plain")], b"Method Not Allowed"
    if kind == LIVENESS:
        return 200, _JSON, b'{"status":"live"}'
    status = 200 if readiness == "ready" else 503
    return status, _JSON, b'{"status":"%s"}' % readiness.encode()
