"""Parameter resolution for handlers and callbacks: dependency injection, path and query values.

Each callable is inspected once, when it is registered; per request only the plan is applied.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from roost.protocol.errors import HttpError
from roost.protocol.http import Headers
from roost.requests import QueryParams, Url
from roost.types import Body, Files, FormData, Identity, IPAddress, JsonBody, Method, PathParams

SubjectKind = Literal["websocket", "request"]
_EMPTY = inspect.Parameter.empty
#: Parameter names of a request handler that receive a part of the request (the attribute).
REQUEST_PARTS: dict[str, str] = {
    "r": "",
    "req": "",
    "query_params": "query_params",
    "headers": "headers",
    "path_params": "path_params",
    "body": "body",
    "method": "method",
    "url": "url",
    "ip_addr": "ip_addr",
    "identity": "identity",
    "form_data": "form_data",
    "files": "files",
}
#: Annotations that pick a part of the request, whatever the parameter's name.
_PART_TYPES: dict[Any, str] = {
    PathParams: "path_params",
    Method: "method",
    FormData: "form_data",
    Files: "files",
    IPAddress: "ip_addr",
    Identity: "identity",
    QueryParams: "query_params",
    Headers: "headers",
    Url: "url",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Param:
    """How one parameter gets its value."""

    name: str
    source: Literal["subject", "global", "router", "path", "query", "part", "json", "typed"]
    kind: Any = str
    default: Any = _EMPTY


def _coerce_type(annotation: Any) -> Any:
    """The scalar type to convert query values to (``X | None`` means X)."""
    if annotation is _EMPTY or annotation is Any:
        return str
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce_type(args[0]) if len(args) == 1 else str
    if origin is list:
        (inner,) = typing.get_args(annotation) or (str,)
        return list[_coerce_type(inner)]  # type: ignore[misc]
    return annotation if annotation in (int, float, bool, str) else str


def plan(
    func: Callable[..., Any], *, subject: SubjectKind, path_params: tuple[str, ...] = ()
) -> list[Param]:
    """The resolution plan for ``func``.

    The parameter named ``websocket``/``request`` (or annotated with that class, or else a
    first parameter with neither annotation nor default) receives the subject.
    ``global_dependencies``/``router_dependencies`` receive the injected dicts; names of path
    parameters receive them. For a request, a reserved name (``REQUEST_PARTS``: ``body``,
    ``headers``, ``form_data``, ...) or an annotation of ``roost.types`` (``JsonBody``,
    ``Files``, ...) or ``QueryParams``/``Headers``/``Url`` receives that part of the request.
    Any other name is read from the query string.
    """
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    params: list[Param] = []
    signature = inspect.signature(func)
    subject_taken = False
    for index, p in enumerate(signature.parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, p.annotation)
        if p.name == "global_dependencies":
            params.append(Param(p.name, "global"))
        elif p.name == "router_dependencies":
            params.append(Param(p.name, "router"))
        elif not subject_taken and _is_subject(p, annotation, index, subject, path_params):
            subject_taken = True
            params.append(Param(p.name, "subject"))
        elif p.name in path_params:
            params.append(Param(p.name, "path", _coerce_type(annotation), p.default))
        elif subject == "request" and (part := _request_part(p.name, annotation)) is not None:
            params.append(part)
        else:
            params.append(Param(p.name, "query", _coerce_type(annotation), p.default))
    return params


_SUBJECT_TYPES = {"Request", "WebSocket", "WebSocketAdapter"}


def _request_part(name: str, annotation: Any) -> Param | None:
    """The plan for a request handler's parameter that asks for a part of the request."""
    if inspect.isclass(annotation):
        if issubclass(annotation, msgspec.Struct):
            return Param(name, "typed", annotation)  # the JSON body, decoded and validated
        if issubclass(annotation, JsonBody) or typing.is_typeddict(annotation):
            return Param(name, "json")
        if issubclass(annotation, Body):
            return Param(name, "part", "body")
    part = _PART_TYPES.get(annotation)
    if part is not None:
        return Param(name, "part", part)
    if name in REQUEST_PARTS:
        return Param(name, "part", REQUEST_PARTS[name])
    return None


def _is_subject(
    p: inspect.Parameter, annotation: Any, index: int, subject: str, path_params: tuple[str, ...]
) -> bool:
    """The subject is the parameter named ``websocket``/``request``, or annotated with its
    class, or else the first parameter when it has no annotation and no default."""
    if p.name == subject or getattr(annotation, "__name__", None) in _SUBJECT_TYPES:
        return True
    return index == 0 and p.name not in path_params and annotation is _EMPTY and p.default is _EMPTY


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is bool:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
    except ValueError:
        raise HttpError(
            400, f"parameter {name!r}: {raw!r} is not a valid {kind.__name__}"
        ) from None
    return raw


def resolve(
    params: list[Param],
    *,
    subject: Any,
    query: Any,
    path_params: Mapping[str, str],
    global_deps: dict[str, Any],
    router_deps: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for one call; a missing or malformed value raises HttpError 400."""
    kwargs: dict[str, Any] = {}
    for p in params:
        source = p.source
        if source == "subject":
            kwargs[p.name] = subject
        elif source == "global":
            kwargs[p.name] = global_deps
        elif source == "router":
            kwargs[p.name] = router_deps
        elif source == "part":
            kwargs[p.name] = getattr(subject, p.kind) if p.kind else subject
        elif source == "json":
            try:
                kwargs[p.name] = subject.json()
            except ValueError as exc:
                raise HttpError(400, f"invalid JSON body: {exc}") from None
        elif source == "typed":
            try:
                kwargs[p.name] = msgspec.json.decode(subject.body, type=p.kind)
            except msgspec.ValidationError as exc:
                raise HttpError(400, f"invalid body: {exc}") from None
            except msgspec.DecodeError as exc:
                raise HttpError(400, f"invalid JSON body: {exc}") from None
            except RecursionError:
                raise HttpError(400, "invalid JSON body: nested too deeply") from None
        else:
            kind = p.kind
            if source == "path":
                values = [path_params[p.name]] if p.name in path_params else []
            else:
                values = query.get_all(p.name)
            if not values:
                if p.default is _EMPTY:
                    raise HttpError(400, f"missing required parameter {p.name!r}")
                kwargs[p.name] = p.default
            elif typing.get_origin(kind) is list:
                (inner,) = typing.get_args(kind)
                kwargs[p.name] = [_convert(p.name, v, inner) for v in values]
            else:
                kwargs[p.name] = _convert(p.name, values[0], kind)
    return kwargs
