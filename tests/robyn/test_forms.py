"""Forms and file uploads (``request.form_data``, ``request.files``) over real sockets, and
the 400s that malformed or oversized forms get."""

from __future__ import annotations

from typing import Any

import pytest

from roost.compat.robyn import Request, Robyn
from roost.forms import MAX_PARTS, parse_form
from roost.protocol.errors import HttpError
from tests.http_client import request

BOUNDARY = "roostboundary42"


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body of (field name, file name or None, content) parts."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


FORM_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form_app() -> Robyn:
    app = Robyn(__file__)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        return {
            "fields": request.form_data,
            "files": {name: len(data) for name, data in request.files.items()},
            "first": next(iter(request.files.values()), b"").decode("latin-1"),
        }

    @app.post("/fields")
    def fields(form_data: dict[str, str]) -> dict[str, str]:
        return form_data

    return app


async def test_multipart_fields_and_files(serve) -> None:  # type: ignore[no-untyped-def]
    binary = bytes(range(256)) + b"\r\n--not-the-boundary\r\n"
    body = multipart(
        ("title", None, "Gotham \u2603".encode()),
        ("upload", "notes.txt", b"hello file"),
        ("image", "bat.bin", binary),
    )
    async with serve(form_app()) as server:
        reply = await request(server.port, "POST", "/upload", headers=FORM_HEADERS, body=body)
    assert reply.status == 200
    assert reply.json() == {
        "fields": {"title": "Gotham \u2603"},
        "files": {"notes.txt": 10, "bat.bin": len(binary)},
        "first": "hello file",
    }


async def test_urlencoded_fields_and_a_body_that_is_no_form(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(form_app()) as server:
        urlencoded = await request(
            server.port,
            "POST",
            "/fields",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=b"name=Bruce+Wayne&city=Gotham%21&empty=",
        )
        json_body = await request(
            server.port, "POST", "/fields", headers={"Content-Type": "application/json"}, body=b"{}"
        )
    assert urlencoded.json() == {"name": "Bruce Wayne", "city": "Gotham!", "empty": ""}
    assert json_body.json() == {}


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"--x\r\n", b"without a boundary"),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(("a", None, b"1"))[: -len(f"--{BOUNDARY}--\r\n")],
            b"no closing boundary",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            b"without a Content-Disposition",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nx\r\n"
            f"--{BOUNDARY}--\r\n".encode(),
            b"not form-data with a name",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(("text", None, b"\xff\xfe")),
            b"not valid UTF-8",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            b"garbage that is no multipart at all",
            b"malformed multipart body",
        ),
        ("application/x-www-form-urlencoded", b"a=%ff\xff", b"not valid UTF-8"),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(*[(f"f{i}", None, b"v") for i in range(MAX_PARTS + 1)]),
            f"more than {MAX_PARTS} parts".encode(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"&".join(b"f%d=v" % i for i in range(MAX_PARTS + 1)),
            f"more than {MAX_PARTS} fields".encode(),
        ),
    ],
)
async def test_malformed_forms_get_400(
    serve, content_type: str, body: bytes, message: bytes
) -> None:  # type: ignore[no-untyped-def]
    async with serve(form_app()) as server:
        for path in ("/upload", "/fields"):  # read in the handler, or as a parameter
            reply = await request(
                server.port, "POST", path, headers={"Content-Type": content_type}, body=body
            )
            assert reply.status == 400, (path, reply)
            assert message in reply.body, (path, reply.body)


def test_too_many_part_headers_is_a_clear_error() -> None:
    headers = "".join(f"X-{i}: v\r\n" for i in range(20))
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n{headers}\r\nx\r\n'
        f"--{BOUNDARY}--\r\n"
    ).encode()
    with pytest.raises(HttpError, match="malformed multipart body"):
        parse_form(f"multipart/form-data; boundary={BOUNDARY}", body)


def test_no_content_type_is_an_empty_form() -> None:
    form = parse_form(None, b"a=1")
    assert (form.fields, form.files) == ({}, {})
