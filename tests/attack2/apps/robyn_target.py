"""A Robyn-style app exercising the compat surface, for attack tests."""

from __future__ import annotations

import os

from roost.compat.robyn import (
    AuthenticationHandler,
    BearerGetter,
    Request,
    Response,
    Robyn,
    SSEMessage,
    SSEResponse,
    SubRouter,
    jsonify,
)
from roost.compat.robyn.robyn import Identity
from roost.compat.robyn.templating import JinjaTemplate

HERE = os.path.dirname(os.path.abspath(__file__))
app = Robyn(__file__)
templates = JinjaTemplate(os.path.join(HERE, "templates"))
calls = {"const": 0}


class Tokens(AuthenticationHandler):
    def authenticate(self, request: Request):
        token = self.token_getter.get_token(request)
        return Identity(claims={"user": "u"}) if token == "good" else None


app.configure_authentication(Tokens(token_getter=BearerGetter()))
app.set_response_header("X-Global", "g")
app.add_request_header("X-Added", "a")


@app.get("/hello")
def hello():
    return "hello"


@app.get("/secret", auth_required=True)
def secret(request: Request):
    return "SECRET"


@app.post("/secret", auth_required=True)
def secret_post(request: Request):
    return "SECRET"


@app.get("/items/:id", auth_required=True)
def item(request: Request):
    return "SECRET " + request.path_params["id"]


@app.get("/const", const=True, auth_required=True)
def const_secret():
    calls["const"] += 1
    return "SECRET const"


@app.before_request("/hooked")
def deny(request: Request):
    return Response(403, {}, "denied")


@app.get("/hooked", const=True)
def hooked():
    return "SECRET hooked"


@app.get("/form")
def form_get():
    return "x"


@app.post("/form")
def form(request: Request):
    files = request.files
    return {
        "fields": dict(request.form_data),
        "files": {k: len(v) for k, v in files.items()},
    }


@app.get("/tpl")
def tpl(request: Request):
    return templates.render_template("page.html", name=request.query_params.get("name", ""))


@app.get("/sse")
def sse(request: Request):
    ev = request.query_params.get("event", "e")
    data = request.query_params.get("data", "d")

    def gen():
        yield SSEMessage(data, event=ev, id="1")

    return SSEResponse(gen())


@app.get("/reflect")
def reflect(request: Request):
    return Response(200, {"X-Echo": request.query_params.get("v", "")}, "ok")


@app.get("/url")
def url(request: Request):
    u = request.url
    return {"str": str(u), "scheme": u.scheme, "host": u.host, "path": u.path, "query": u.query}


@app.get("/reqheaders")
def reqheaders(request: Request):
    return {"added": request.headers.get("X-Added", None)}


@app.get("/jsonify")
def jsn(request: Request):
    return jsonify({"v": request.query_params.get("v", "")})


@app.view("/view")
def view():
    def get(request: Request):
        return "view get"

    def post(request: Request):
        return "view post"


sub = SubRouter("/sub")


@sub.get("/secret", auth_required=True)
def sub_secret(request: Request):
    return "SECRET sub"


@sub.get("/open")
def sub_open():
    return "open"


app.include_router(sub)

if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
