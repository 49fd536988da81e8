"""A notes service written as a Robyn app: routes with every method, bearer-token auth,
middlewares, a SubRouter, SSE, file upload, a Jinja2 template and a WebSocket.

It runs on roost with only its imports changed (``robyn`` -> ``roost.compat.robyn``); with the
original ``from robyn import ...`` lines it runs unchanged under
``python -m roost.compat.robyn_shim examples/robyn_app/app.py``. Serve it with
``python -m examples.robyn_app.app --port 8080``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from roost.compat.robyn import (
    ALLOW_CORS,
    AuthenticationHandler,
    BearerGetter,
    Request,
    Response,
    Robyn,
    SSEMessage,
    SSEResponse,
    SubRouter,
    WebSocketDisconnect,
    jsonify,
    status_codes,
)
from roost.compat.robyn.robyn import Identity
from roost.compat.robyn.templating import JinjaTemplate

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENS = {"batman-token": "batman", "robin-token": "robin"}
MAX_UPLOAD = 64 * 1024

app = Robyn(__file__)
templates = JinjaTemplate(os.path.join(HERE, "templates"))
notes: dict[int, dict[str, Any]] = {}
uploads: dict[str, int] = {}
counter = {"next": 1, "requests": 0}


class TokenAuth(AuthenticationHandler):
    """Accepts the bearer tokens in TOKENS."""

    def authenticate(self, request: Request) -> Identity | None:
        token = self.token_getter.get_token(request)
        user = TOKENS.get(token or "")
        if user is None:
            return None
        return Identity(claims={"user": user})


app.configure_authentication(TokenAuth(token_getter=BearerGetter()))
ALLOW_CORS(app, origins=["http://localhost:3000"])
app.set_response_header("X-Content-Type-Options", "nosniff")


# -- middlewares ---------------------------------------------------------------------------


@app.before_request()
def count_requests(request: Request) -> Request:
    counter["requests"] += 1
    request.headers.set("X-Request-Start", str(time.monotonic()))
    return request


@app.after_request()
def add_timing(response: Response) -> Response:
    response.headers.set("X-Served-By", "notes")
    return response


@app.before_request("/notes/:note_id")
async def check_note_id(request: Request) -> Request | Response:
    if not request.path_params["note_id"].isdigit():
        return Response(status_codes.HTTP_400_BAD_REQUEST, {}, "note id must be a number")
    return request


# -- pages -----------------------------------------------------------------------------------


@app.get("/")
def index(request: Request) -> Response:
    newest = sorted(notes.values(), key=lambda n: n["id"], reverse=True)[:5]
    return templates.render_template("index.html", title="Notes", notes=newest)


@app.get("/health", const=True)
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stats")
def stats() -> Response:
    body = jsonify({"notes": len(notes), "requests": counter["requests"]})
    return Response(200, {"Content-Type": "application/json"}, body)


# -- notes: every method -------------------------------------------------------------------


@app.get("/notes")
def list_notes(request: Request) -> list[dict[str, Any]]:
    tag = request.query_params.get("tag", None)
    return [n for n in notes.values() if tag is None or tag in n["tags"]]


@app.post("/notes", auth_required=True)
def create_note(request: Request) -> tuple[str, dict[str, str], int]:
    data = request.json()
    note = {
        "id": counter["next"],
        "text": str(data.get("text", "")),
        "tags": list(data.get("tags", [])),
        "author": request.identity.claims["user"],
    }
    notes[note["id"]] = note
    counter["next"] += 1
    return jsonify(note), {"Content-Type": "application/json"}, status_codes.HTTP_201_CREATED


@app.get("/notes/:note_id")
def read_note(request: Request) -> Any:
    note = notes.get(int(request.path_params["note_id"]))
    if note is None:
        return Response(status_codes.HTTP_404_NOT_FOUND, {}, "no such note")
    return note


@app.put("/notes/:note_id", auth_required=True)
async def replace_note(request: Request) -> Any:
    note_id = int(request.path_params["note_id"])
    if note_id not in notes:
        return Response(status_codes.HTTP_404_NOT_FOUND, {}, "no such note")
    data = request.json()
    notes[note_id].update(text=str(data["text"]), tags=list(data.get("tags", [])))
    return notes[note_id]


@app.patch("/notes/:note_id", auth_required=True)
def tag_note(request: Request) -> Any:
    note = notes.get(int(request.path_params["note_id"]))
    if note is None:
        return Response(status_codes.HTTP_404_NOT_FOUND, {}, "no such note")
    note["tags"].append(request.json()["tag"])
    return note


@app.delete("/notes/:note_id", auth_required=True)
def delete_note(request: Request) -> Response:
    notes.pop(int(request.path_params["note_id"]), None)
    return Response(status_codes.HTTP_204_NO_CONTENT, {}, "")


@app.head("/notes/:note_id")
def note_exists(request: Request) -> Response:
    found = int(request.path_params["note_id"]) in notes
    return Response(200 if found else 404, {"X-Exists": str(found).lower()}, "")


@app.options("/notes")
def notes_options() -> Response:
    return Response(204, {"Allow": "GET, POST, OPTIONS"}, "")


# -- file upload -----------------------------------------------------------------------------


@app.post("/upload", auth_required=True)
def upload(request: Request) -> Any:
    files = request.files
    if not files:
        return Response(status_codes.HTTP_400_BAD_REQUEST, {}, "no file")
    for name, content in files.items():
        if len(content) > MAX_UPLOAD:
            return Response(413, {}, f"{name} is over {MAX_UPLOAD} bytes")
        uploads[name] = len(content)
    return {"stored": sorted(files), "caption": request.form_data.get("caption", "")}


# -- a SubRouter -----------------------------------------------------------------------------

admin = SubRouter("/admin")


@admin.before_request()
def admin_only(request: Request) -> Request | Response:
    if request.headers.get("Authorization") != "Bearer batman-token":
        return Response(status_codes.HTTP_403_FORBIDDEN, {}, "admins only")
    return request


@admin.get("/uploads")
def list_uploads() -> dict[str, int]:
    return uploads


@admin.post("/reset")
def reset() -> dict[str, bool]:
    notes.clear()
    uploads.clear()
    return {"reset": True}


app.include_router(admin)


# -- Server-Sent Events ------------------------------------------------------------------------


@app.get("/events")
def events(request: Request) -> SSEResponse:
    count = int(request.query_params.get("count", "3"))

    def event_generator():  # type: ignore[no-untyped-def]
        for i in range(count):
            yield SSEMessage(jsonify({"tick": i, "notes": len(notes)}), event="tick", id=str(i))
            time.sleep(0.01)

    return SSEResponse(event_generator())


@app.get("/events/async")
async def async_events() -> SSEResponse:
    async def event_generator():  # type: ignore[no-untyped-def]
        for i in range(2):
            await asyncio.sleep(0.01)
            yield f"data: async {i}\n\n"

    return SSEResponse(event_generator())


# -- WebSocket -------------------------------------------------------------------------------


@app.websocket("/ws")
async def websocket_endpoint(websocket):  # type: ignore[no-untyped-def]
    try:
        while True:
            message = await websocket.receive_text()
            if message == "count":
                await websocket.send_text(str(len(notes)))
            else:
                await websocket.send_text(f"echo: {message}")
    except WebSocketDisconnect:
        pass


@websocket_endpoint.on_connect
def on_connect(websocket):  # type: ignore[no-untyped-def]
    return "welcome to notes"


@websocket_endpoint.on_close
def on_close(websocket):  # type: ignore[no-untyped-def]
    return "bye"


@app.startup_handler
def on_startup() -> None:
    notes.clear()
    counter["next"] = 1


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
