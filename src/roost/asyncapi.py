"""The AsyncAPI 3.0 document of an app's WebSocket endpoints, and a self-contained page that
shows it; the app serves them at ``/asyncapi.json`` and ``/asyncapi`` beside its OpenAPI
document (``Roost(openapi=True)``).

Each endpoint is a channel: its address with its path parameters, its query parameters and
subprotocols (in the ``ws`` binding), and its messages. Each typed message (``.on(Type)``) is
an operation the app receives, with its reply (``{"type": "reply", "ref", "data"}``, ``data``
of the handler's declared reply type or return annotation) and the ``Error`` message; what the
server sends (``endpoint.sends(Type)``, and ``Error``) is one operation the app sends. Payload
schemas are the JSON Schemas msgspec derives from the types.
"""

from __future__ import annotations

import html
import inspect
import re
import typing
from collections.abc import Iterable
from typing import Any

import msgspec

from roost.hub.history import REASONS, RESUME_PARAM
from roost.openapi import OpenAPIInfo
from roost.params import Param, plan
from roost.routes import WebSocketEndpoint
from roost.routing import Pattern
from roost.typed import Error, Reply

__all__ = ["asyncapi_document", "asyncapi_page"]

_REF = "#/components/schemas/{name}"
_CALLBACKS = ("handler", "on_connect", "on_close")
_CONTENT_TYPES = {"json": "application/json", "msgpack": "application/msgpack"}


def asyncapi_document(
    endpoints: Iterable[tuple[str, str, WebSocketEndpoint]], info: OpenAPIInfo | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``endpoints`` ((method, path, endpoint) triples, as
    ``Router.entries()`` lists them); ``info`` gives its title, version and description."""
    info = info or OpenAPIInfo()
    head: dict[str, Any] = {"title": info.title, "version": info.version}
    if info.description:
        head["description"] = info.description
    endpoints = list(endpoints)
    types: list[Any] = [Error]
    for _, _, endpoint in endpoints:
        table = endpoint.messages
        for t in (*table.types, *table.sent, *_replies(endpoint).values()):
            if t not in types:
                types.append(t)
    found, schemas = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, found, strict=True))
    schemas.setdefault("Error", schema_of[Error])
    messages: dict[str, Any] = {"Error": _message("Error", {"$ref": _REF.format(name="Error")})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    taken: set[str] = set()
    for _, path, endpoint in endpoints:
        cid = _unique(_ident(path), taken)
        channel_ref = {"$ref": f"#/channels/{cid}"}
        channel, content_type = (
            _channel(path, endpoint),
            _CONTENT_TYPES[endpoint.messages.codec.name],
        )
        own: dict[str, Any] = {}

        def use(
            name: str, schema: dict[str, Any], own: dict[str, Any] = own, cid: str = cid
        ) -> dict[str, str]:
            messages.setdefault(name, _message(name, schema))
            own[name] = {"$ref": f"#/components/messages/{name}"}
            return {"$ref": f"#/channels/{cid}/messages/{name}"}

        replies = _replies(endpoint)
        for message_type, func in endpoint.messages.handlers.items():
            name = message_type.__name__
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": channel_ref,
                "summary": f"The client sends {name}",
                "messages": [use(name, schema_of[message_type])],
            }
            text = inspect.getdoc(func)
            if text:
                operation["description"] = text
            data = schema_of[replies[message_type]] if message_type in replies else {}
            reply_ref = use(f"{name}Reply", _reply_schema(data))
            operation["reply"] = {"channel": channel_ref, "messages": [reply_ref, use("Error", {})]}
            operations[_unique(f"{cid}_receive_{_ident(name)}", taken)] = operation
        if endpoint.messages:
            sent = [use(_name(t), schema_of[t]) for t in endpoint.messages.sent]
            operations[_unique(f"{cid}_send", taken)] = {
                "action": "send",
                "channel": channel_ref,
                "summary": "The server sends",
                "messages": [*sent, use("Error", {})],
            }
        if endpoint.keeps_history or endpoint.presence_events:
            roost_messages = []
            if endpoint.keeps_history:
                roost_messages += [
                    use("RoomMessage", _ROOM_MESSAGE),
                    use("RoomNotice", _ROOM_NOTICE),
                ]
            if endpoint.presence_events:
                roost_messages.append(use("PresenceEvent", _PRESENCE_EVENT))
            operations[_unique(f"{cid}_send_roost", taken)] = {
                "action": "send",
                "channel": channel_ref,
                "summary": "roost sends",
                "description": (
                    "Room messages in envelopes with their position, the notice that starts "
                    "each join of a room with history, and presence events "
                    "(docs/delivery.md)."
                ),
                "messages": roost_messages,
            }
        if own:
            channel["messages"] = own
            for name in own:
                messages[name].setdefault("contentType", content_type)
        channels[cid] = channel
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": head,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
    return doc


_POSITION = {
    "room": {"type": "string"},
    "epoch": {"type": "string", "description": "Names the room's current history"},
    "offset": {"type": "integer", "minimum": 0},
}
_ROOM_MESSAGE: dict[str, Any] = {
    "type": "object",
    "description": (
        "A message broadcast to a room with history, at its position; data is the message as "
        "sent (data_b64 for a binary one)"
    ),
    "properties": {
        "roost": {"const": "message"},
        **_POSITION,
        "data": {"type": "string"},
        "data_b64": {"type": "string", "contentEncoding": "base64"},
    },
    "required": ["roost", "room", "epoch", "offset"],
}
_ROOM_NOTICE: dict[str, Any] = {
    "type": "object",
    "description": (
        "Sent first when the connection joins a room with history; replay messages follow, "
        "from the position after offset"
    ),
    "properties": {
        "roost": {"enum": ["joined", "recovered", "not_recovered"]},
        **_POSITION,
        "replay": {"type": "integer", "minimum": 0},
        "reason": {"enum": list(REASONS)},
    },
    "required": ["roost", "room", "epoch", "offset", "replay"],
}
_PRESENCE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "A member joined or left a room this connection is in",
    "properties": {
        "roost": {"enum": ["join", "leave"]},
        "room": {"type": "string"},
        "id": {"type": "string"},
        "meta": {"description": "The metadata it joined with"},
    },
    "required": ["roost", "room", "id"],
}


def _replies(endpoint: WebSocketEndpoint) -> dict[Any, Any]:
    """The reply ``data`` type of each message type: declared, else the handler's return
    annotation (left out when it is missing, ``Any``, or unresolvable)."""
    table = endpoint.messages
    out: dict[Any, Any] = {}
    for message_type, func in table.handlers.items():
        kind = table.replies.get(message_type)
        if kind is None:
            try:
                kind = typing.get_type_hints(func).get("return")
            except Exception:
                kind = None
        if kind is None or kind is Any:
            continue
        try:
            msgspec.json.schema(kind)
        except (TypeError, ValueError):
            continue
        out[message_type] = kind
    return out


def _reply_schema(data: dict[str, Any]) -> dict[str, Any]:
    ref = {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 128}]}
    return {
        "type": "object",
        "description": Reply.__doc__ or "",
        "properties": {"type": {"enum": ["reply"]}, "ref": ref, "data": data},
        "required": ["type", "ref"],
    }


def _message(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": name, "payload": schema}


def _channel(path: str, endpoint: WebSocketEndpoint) -> dict[str, Any]:
    pattern = Pattern.compile(path)
    address = path
    for name in pattern.params:
        address = address.replace(f":{name}", f"{{{name}}}").replace(
            f"{{{name}:path}}", f"{{{name}}}"
        )
    channel: dict[str, Any] = {"address": address}
    doc = inspect.getdoc(endpoint.handler)
    if doc:
        channel["description"] = doc
    params = _params(endpoint, pattern.params)
    path_params = {p.name: p for p in params if p.source == "path"}
    for name in pattern.params:
        kind = path_params[name].kind if name in path_params else str
        entry = {"description": f"A path parameter ({_json_type(kind)})"}
        channel.setdefault("parameters", {})[name] = entry
    binding: dict[str, Any] = {}
    query = [p for p in params if p.source == "query" and p.name not in pattern.params]
    if query or endpoint.keeps_history:
        properties = {p.name: msgspec.json.schema(p.kind) for p in query}
        if endpoint.keeps_history:
            properties[RESUME_PARAM] = {
                "type": "string",
                "description": (
                    "Where a reconnecting client stopped: a JSON object {room: [epoch, "
                    "offset]} (docs/delivery.md)"
                ),
            }
        binding["query"] = {"type": "object", "properties": properties}
        required = [p.name for p in query if p.default is inspect.Parameter.empty]
        if required:
            binding["query"]["required"] = required
    if endpoint.subprotocols:
        binding["headers"] = {
            "type": "object",
            "properties": {
                "Sec-WebSocket-Protocol": {
                    "type": "string",
                    "description": "The subprotocols the endpoint speaks",
                    "enum": list(endpoint.subprotocols),
                }
            },
        }
    if binding:
        channel["bindings"] = {"ws": {**binding, "bindingVersion": "0.1.0"}}
    return channel


def _params(endpoint: WebSocketEndpoint, path_params: tuple[str, ...]) -> list[Param]:
    """The path and query parameters of the endpoint's callbacks, each name once."""
    out: dict[str, Param] = {}
    for name in _CALLBACKS:
        func = endpoint.callback(name)
        if func is None:
            continue
        for p in plan(func, subject="websocket", path_params=path_params):
            if p.source in ("path", "query"):
                out.setdefault(p.name, p)
    return list(out.values())


def _json_type(kind: Any) -> str:
    return str(msgspec.json.schema(kind).get("type", "string"))


def _name(kind: Any) -> str:
    return _ident(getattr(kind, "__name__", None) or str(kind))


def _ident(text: str) -> str:
    """``text`` as an AsyncAPI key (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", text).strip("_") or "root"


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name}_{n}", n + 1
    taken.add(out)
    return out


def asyncapi_page(title: str, spec_url: str = "/asyncapi.json") -> str:
    """A self-contained HTML page that shows the channels, operations, messages and schemas
    of the AsyncAPI document at ``spec_url`` (no script or style from elsewhere)."""
    return _PAGE.replace("{title}", html.escape(title)).replace(
        "{spec}", html.escape(spec_url, quote=True)
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: WebSocket API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
section.channel{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.op{margin:.4rem 0}.dir{font-weight:bold;display:inline-block;min-width:9rem}
code,pre{background:#f3f3f8;padding:0 .3rem}pre{padding:.5rem;overflow:auto}
</style></head>
<body><h1>{title}: WebSocket API</h1>
<p>The AsyncAPI document: <a href="{spec}"><code>{spec}</code></a></p>
<div id="channels">Loading&hellip;</div>
<h2>Schemas</h2><div id="schemas"></div>
<script>
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function last(ref) { return ref.split("/").pop(); }
function link(name) {
  const a = el("a", name); a.href = "#schema-" + name; return a;
}
fetch("{spec}").then(r => r.json()).then(doc => {
  const box = document.getElementById("channels");
  box.textContent = "";
  for (const [id, ch] of Object.entries(doc.channels)) {
    const sec = el("section", undefined, "channel"); sec.id = "channel-" + id;
    sec.append(el("h2", ch.address));
    if (ch.description) sec.append(el("p", ch.description));
    const ws = (ch.bindings || {}).ws || {};
    const rows = [];
    for (const [n, p] of Object.entries(ch.parameters || {}))
      rows.push(["path", n, p.description || ""]);
    const q = ws.query || {};
    for (const [n, s] of Object.entries(q.properties || {}))
      rows.push(["query", n,
                 (s.type || "") + ((q.required || []).includes(n) ? ", required" : "")]);
    const proto = (((ws.headers || {}).properties || {})["Sec-WebSocket-Protocol"] || {}).enum;
    if (proto) rows.push(["subprotocols", proto.join(", "), ""]);
    if (rows.length) {
      const t = el("table", undefined, "params");
      for (const r of rows) {
        const tr = el("tr");
        for (const c of r) tr.append(el("td", c));
        t.append(tr);
      }
      sec.append(t);
    }
    for (const op of Object.values(doc.operations)) {
      if (last(op.channel.$ref) !== id) continue;
      const div = el("div", undefined, "op");
      const dir = op.action === "receive" ? "Client \\u2192 server" : "Server \\u2192 client";
      div.append(el("span", dir, "dir"));
      op.messages.forEach((m, i) => { if (i) div.append(", "); div.append(link(last(m.$ref))); });
      if (op.reply) {
        div.append(el("span", " \\u2014 answered with "));
        op.reply.messages.forEach((m, i) => {
          if (i) div.append(" or ");
          div.append(link(last(m.$ref)));
        });
      }
      if (op.description) div.append(el("p", op.description));
      sec.append(div);
    }
    box.append(sec);
  }
  const schemas = document.getElementById("schemas");
  const all = Object.assign({}, doc.components.schemas);
  for (const [n, m] of Object.entries(doc.components.messages))
    if (!m.payload.$ref) all[n] = m.payload;
  for (const [n, s] of Object.entries(all)) {
    const d = el("div"); d.id = "schema-" + n;
    d.append(el("h3", n), el("pre", JSON.stringify(s, null, 2)));
    schemas.append(d);
  }
  for (const [n, m] of Object.entries(doc.components.messages)) {
    if (m.payload.$ref && last(m.payload.$ref) !== n) {
      const d = el("div"); d.id = "schema-" + n;
      d.append(el("h3", n), el("p", "See " + last(m.payload.$ref)));
      schemas.append(d);
    }
  }
});
</script></body></html>
"""
