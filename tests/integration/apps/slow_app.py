"""An app for the shutdown tests, run as ``python slow_app.py --port N``: POST /slow answers
only after a shutdown has begun, as a handler would whose work outlasts a SIGTERM."""

import asyncio

from roost import Request, Roost

app = Roost(__file__)


@app.post("/slow")
async def slow(request: Request):  # type: ignore[no-untyped-def]
    print("handling", flush=True)
    assert app.server is not None
    await app.server.wait_closing()
    await asyncio.sleep(0.2)  # the rest of the handler's work, after the signal
    return {"echo": request.body.decode()}


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
