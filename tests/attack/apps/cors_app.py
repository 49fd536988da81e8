"""CORS app: `python cors_app.py --port N`; ATTACK_CORS chooses the configuration."""

import os

from roost import Response, Roost

app = Roost(__file__)
mode = os.environ.get("ATTACK_CORS", "list")
if mode == "list":
    app.add_cors(["https://app.example"], allow_credentials=True)
elif mode == "star":
    app.add_cors("*")
elif mode == "starlist":
    app.add_cors(["*"], allow_credentials=True)
elif mode == "string":
    app.add_cors("https://app.example", allow_credentials=True)


@app.get("/me")
def me():
    return {"user": "alice"}


@app.get("/hello")
def hello():
    return "hello"


@app.post("/me")
def me_post():
    return "changed"


@app.get("/private")
def private():
    return Response(401, None, "no")


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
