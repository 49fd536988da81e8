"""A basic OpenAPI 3.1 document of an app's HTTP routes, served at ``/openapi.json`` with a
small offline page at ``/docs`` when the app is created with ``openapi=True`` (or an
``OpenAPI``).

Each operation has its summary (``openapi_name`` or the handler's name), the handler's
docstring, tags, path and query parameters with their types, a JSON request body for
``JsonBody`` parameters, the JSON Schema of a msgspec ``Struct`` read as the body or
returned (in ``components.schemas``), the documented ``responses``, ``deprecated`` and, for
``auth_required`` routes, a bearer security requirement. Routes with
``include_in_schema=False`` are left out.
"""

from __future__ import annotations

import html
import inspect
import re
import typing
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import msgspec

from roost.params import Param
from roost.routing import Pattern

__all__ = [
    "Components",
    "Contact",
    "ExternalDocumentation",
    "License",
    "OpenAPI",
    "OpenAPIInfo",
    "Server",
]

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


@dataclass
class Contact:
    """Who to contact about the API."""

    name: str | None = None
    url: str | None = None
    email: str | None = None


@dataclass
class License:
    """The API's license."""

    name: str | None = None
    url: str | None = None


@dataclass
class Server:
    """A server the API is served from."""

    url: str
    description: str | None = None


@dataclass
class ExternalDocumentation:
    """Documentation elsewhere."""

    description: str | None = None
    url: str | None = None


@dataclass
class Components:
    """Reusable parts of the document (merged as given)."""

    schemas: dict[str, Any] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    securitySchemes: dict[str, Any] = field(default_factory=dict)  # OpenAPI's spelling


@dataclass
class OpenAPIInfo:
    """The document's ``info`` and top-level parts: ``title`` ("roost API"), ``version``
    ("1.0.0"), ``description``, ``contact``, ``license``, ``servers``, ``externalDocs``,
    ``components``."""

    title: str = "roost API"
    version: str = "1.0.0"
    description: str | None = None
    termsOfService: str | None = None  # OpenAPI's spelling
    contact: Contact = field(default_factory=Contact)
    license: License = field(default_factory=License)
    servers: list[Server] = field(default_factory=list)
    externalDocs: ExternalDocumentation | None = None  # OpenAPI's spelling
    components: Components = field(default_factory=Components)


class _Route(Protocol):
    handler: Any
    params: list[Param]
    options: Any


@dataclass
class OpenAPI:
    """What the document says about the API besides its routes (``info``)."""

    info: OpenAPIInfo = field(default_factory=OpenAPIInfo)

    def document(self, routes: Iterable[tuple[str, str, _Route]]) -> dict[str, Any]:
        """The OpenAPI 3.1 document of ``routes`` ((method, path, route) triples)."""
        info = self.info
        head: dict[str, Any] = {"title": info.title, "version": info.version}
        if info.description:
            head["description"] = info.description
        if info.termsOfService:
            head["termsOfService"] = info.termsOfService
        for name, part in (("contact", info.contact), ("license", info.license)):
            given = {k: v for k, v in asdict(part).items() if v is not None}
            if given:
                head[name] = given
        doc: dict[str, Any] = {"openapi": "3.1.0", "info": head, "paths": {}}
        if info.servers:
            doc["servers"] = [
                {k: v for k, v in asdict(s).items() if v is not None} for s in info.servers
            ]
        if info.externalDocs is not None:
            doc["externalDocs"] = {
                k: v for k, v in asdict(info.externalDocs).items() if v is not None
            }
        components = {k: dict(v) for k, v in asdict(info.components).items() if v}
        secured = False
        listed = [(m, p, r) for m, p, r in routes if r.options.include_in_schema]
        typed = sorted(
            {t for _, _, route in listed for t in _types_of(route)}, key=lambda t: t.__name__
        )
        refs: dict[Any, dict[str, Any]] = {}
        if typed:  # msgspec Structs in bodies and responses: their JSON Schema, once each
            schemas, defs = msgspec.json.schema_components(
                typed, ref_template="#/components/schemas/{name}"
            )
            refs = dict(zip(typed, schemas, strict=True))
            components.setdefault("schemas", {}).update(defs)
        for method, path, route in listed:
            options = route.options
            operation = _operation(method, path, route, refs)
            if options.auth_required:
                operation["security"] = [{"BearerAuth": []}]
                secured = True
            doc["paths"].setdefault(_openapi_path(path), {})[method.lower()] = operation
        if secured:
            schemes = components.setdefault("securitySchemes", {})
            schemes.setdefault("BearerAuth", {"type": "http", "scheme": "bearer"})
        if components:
            doc["components"] = components
        return doc


def _openapi_path(path: str) -> str:
    """``/items/:id`` and ``/items/{id:path}`` as OpenAPI's ``/items/{id}``."""
    pattern = Pattern.compile(path)
    out = path
    for name in pattern.params:
        out = out.replace(f":{name}", f"{{{name}}}").replace(f"{{{name}:path}}", f"{{{name}}}")
    return out


def _types_of(route: _Route) -> list[Any]:
    """The msgspec Structs a route reads as its body or returns."""
    found = [p.kind for p in route.params if p.source == "typed"]
    returned = _returned(route.handler)
    if returned is not None:
        found.append(returned)
    return found


def _returned(handler: Any) -> Any:
    """The handler's return annotation when it is a Struct or a list of Structs, else None."""
    try:
        annotation = typing.get_type_hints(handler).get("return")
    except Exception:
        return None
    inner = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and inner and _is_struct(inner[0]):
        return annotation
    return annotation if _is_struct(annotation) else None


def _is_struct(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, msgspec.Struct)


def _operation(
    method: str, path: str, route: _Route, refs: dict[Any, dict[str, Any]]
) -> dict[str, Any]:
    options = route.options
    handler = route.handler
    name = getattr(handler, "__name__", "handler")
    operation: dict[str, Any] = {
        "summary": options.openapi_name or name.replace("_", " "),
        "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
    }
    doc = inspect.getdoc(handler)
    if doc:
        operation["description"] = doc
    if options.openapi_tags:
        operation["tags"] = list(options.openapi_tags)
    if options.deprecated:
        operation["deprecated"] = True
    parameters: list[dict[str, Any]] = []
    path_params = Pattern.compile(path).params
    for param in route.params:
        if param.source == "path" or (param.source == "query" and param.name in path_params):
            parameters.append(
                {"name": param.name, "in": "path", "required": True, "schema": _schema(param)}
            )
        elif param.source == "query":
            entry: dict[str, Any] = {
                "name": param.name,
                "in": "query",
                "required": param.default is inspect.Parameter.empty,
                "schema": _schema(param),
            }
            parameters.append(entry)
        elif param.source == "json":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        elif param.source == "typed":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[param.kind]}},
            }
    if parameters:
        operation["parameters"] = parameters
    status = str(options.status_code or 200)
    responses: dict[str, Any] = {status: {"description": "Successful Response"}}
    returned = _returned(handler)
    if returned is not None:
        responses[status]["content"] = {"application/json": {"schema": refs[returned]}}
    if any(p.source in ("typed", "path", "query") for p in route.params):
        responses.setdefault("400", {"description": "A parameter or the body is invalid"})
    for code, described in (options.responses or {}).items():
        text = described if isinstance(described, str) else "Response"
        responses[str(code)] = {"description": text}
    operation["responses"] = responses
    return operation


def _schema(param: Param) -> dict[str, Any]:
    kind = param.kind
    inner = getattr(kind, "__args__", None)
    if inner:
        return {"type": "array", "items": {"type": _TYPES.get(inner[0], "string")}}
    return {"type": _TYPES.get(kind, "string")}


def docs_page(title: str, spec_url: str = "/openapi.json") -> str:
    """A self-contained HTML page that lists the operations of the document at ``spec_url``
    (no script or style from elsewhere)."""
    return _DOCS_PAGE.replace("{title}", html.escape(title)).replace(
        "{spec}", html.escape(spec_url, quote=True)
    )


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.op{border:1px solid #ccd;border-radius:6px;margin:.5rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
code{background:#f3f3f8;padding:0 .3rem}
</style></head>
<body><h1>{title}</h1><p>The document: <a href="{spec}"><code>{spec}</code></a></p>
<div id="ops">Loading&hellip;</div>
<script>
fetch("{spec}").then(r => r.json()).then(doc => {
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const div = document.createElement("div");
      div.className = "op";
      const m = document.createElement("span");
      m.className = "m"; m.textContent = method;
      const p = document.createElement("code"); p.textContent = path;
      const s = document.createElement("p"); s.textContent = op.summary || "";
      div.append(m, p, s);
      ops.append(div);
    }
  }
});
</script></body></html>
"""
