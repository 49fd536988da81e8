"""The app the browser client is tested against: a page that lists the room messages its
RoostSocket hands it, a room with history to read, and endpoints to publish to it, to send
crafted envelopes and to close with a given code.

Run: ``python -m tests.browser.apps.feed_app --port N [--processes 2] [--broker redis://...]``.
"""

from __future__ import annotations

import os

from roost import Response, RoomHistory, Roost, WebSocket, html

PAGE = """<!doctype html>
<meta charset="utf-8"><title>feed</title>
<p id="state"></p>
<ol id="messages"></ol>
<script src="/roost/client.js"></script>
<script>
// start(path, options): one RoostSocket; everything it reports is kept in window.seen, and
// each room message is shown as a list item, each state in #state.
window.seen = { states: [], events: [], bare: [], messages: [] };
window.start = (path, options) => {
  window.sock = new RoostSocket(path, Object.assign({
    retryDelay: 100,
    maxRetryDelay: 400,
    onMessage(data, info) {
      const text = typeof data === "string" ? data : "bytes:" + new Uint8Array(data).join(",");
      if (info === null) {
        window.seen.bare.push(text);
        return;
      }
      window.seen.messages.push([info.room, info.epoch, info.offset, text]);
      const li = document.createElement("li");
      li.textContent = text;
      document.getElementById("messages").append(li);
    },
    onEvent(event) { window.seen.events.push(event); },
    onState(state, detail) {
      window.seen.states.push([state, detail]);
      document.getElementById("state").textContent =
        state === "not_recovered" ? `not recovered (${detail.room}: ${detail.reason})` : state;
    },
  }, options || {}));
};
</script>
"""

app = Roost(__file__)


@app.get("/")
def page() -> Response:
    return html(PAGE)


@app.websocket("/feed", history=RoomHistory(size=100_000, ttl=600), presence_events=True)
async def feed(websocket: WebSocket, room: str = "r") -> None:
    """Tells the page its process, then joins ``room`` and stays."""
    await websocket.send_json({"pid": os.getpid()})
    await websocket.join(room)
    while True:
        await websocket.receive_text()


@app.websocket("/publish", ping_interval=None)
async def publish(websocket: WebSocket) -> None:
    """Tells its process; then broadcasts each text it receives to room r of /feed, and
    answers ``ok <text>`` once it is sequenced (or ``unavailable <text>``)."""
    await websocket.send_json({"pid": os.getpid()})
    while True:
        text = await websocket.receive_text()
        await app.broadcast("/feed", text, "r")
        await websocket.send_text(f"ok {text}")


@app.websocket("/crafted")
async def crafted(websocket: WebSocket) -> None:
    """Sends what the client must sort out: duplicate and stale envelopes, a new epoch,
    binary data, bare messages and a presence event; then ``{"done": true}``. (An endpoint
    without history or presence events: on one with them, roost refuses to send text that
    passes for its own messages.)"""

    def envelope(epoch: str, offset: int, data: str, key: str = "data") -> str:
        return (
            f'{{"roost":"message","room":"r","epoch":"{epoch}","offset":{offset},"{key}":"{data}"}}'
        )

    for text in (
        '{"roost":"joined","room":"r","epoch":"e1","offset":0,"replay":0}',
        envelope("e1", 1, "a"),
        envelope("e1", 1, "a"),
        envelope("e1", 2, "b"),
        envelope("e1", 1, "stale"),
        '{"roost":"join","room":"r","id":"x","meta":{"name":"x"}}',
        "bare text",
        '{"roost":"not_recovered","room":"r","epoch":"e2","offset":4,"replay":0,"reason":"epoch"}',
        envelope("e2", 4, "old in e2"),
        envelope("e2", 5, "c"),
        envelope("e2", 6, "AP8=", key="data_b64"),
        '{"roost":"message","room":"s","epoch":"e1","offset":1,"data":"other room"}',
    ):
        await websocket.send_text(text)
    await websocket.send_bytes(b"\x01\x02")
    await websocket.send_json({"done": True})
    while True:
        await websocket.receive_text()


@app.websocket("/close")
async def close(websocket: WebSocket, code: int, reason: str = "") -> None:
    """Closes at once with ``code`` and ``reason``."""
    await websocket.close(code, reason)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
