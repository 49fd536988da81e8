"""The Robyn compatibility layer from the outside: forms, Host and request.url."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .harness import PY, Served, body_of, exchange, serve, status_of


@pytest.fixture(scope="module")
def robyn_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("robyn")
    cmd = [PY, "robyn_target.py", "--port", "{port}", "--log-level", "WARNING"]
    with serve(cmd, tmp) as server:
        yield server


def _post_form(port: int, body: bytes, content_type: bytes) -> bytes:
    head = (
        b"POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    return exchange(port, head + body)


def _get(port: int, target: str, host: str) -> bytes:
    return exchange(
        port, f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )


@pytest.mark.parametrize("host", ["evil.example/reset?next=x#", "user@evil.example"])
def test_host_that_is_not_a_host_is_refused(robyn_target: Served, host: str) -> None:
    """RFC 9112 section 3.2: a Host that is not uri-host[:port] gets 400. roost serves it and
    puts it into request.url: str(request.url) becomes "http://evil.example/reset?next=x#/url",
    so an app building links from request.url (Robyn's API) writes the client's path and
    query into them."""
    reply = _get(robyn_target.port, "/url", host)
    if status_of(reply) == 200:
        url = json.loads(body_of(reply))
        assert not any(c in url["host"] for c in "/?#@"), url
    else:
        assert status_of(reply) == 400


def test_multipart_with_two_boundary_parameters_is_refused(robyn_target: Served) -> None:
    """Two boundary parameters make the body mean different things to different parsers (a
    filtering proxy may use the first, roost uses the last). RFC 2045 forbids repeating a
    parameter; docs/migrating-from-robyn.md: a malformed multipart body gets 400."""
    body = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--B--\r\n'
    reply = _post_form(robyn_target.port, body, b"multipart/form-data; boundary=C; boundary=B")
    assert status_of(reply) == 400, body_of(reply)


def test_multipart_part_with_two_content_dispositions_is_refused(robyn_target: Served) -> None:
    """A part with two Content-Disposition headers is taken as the second one: a field that a
    filter in front saw as a text field "a" reaches the app as a file named "evil"."""
    body = (
        b'--B\r\nContent-Disposition: form-data; name="a"\r\n'
        b'Content-Disposition: form-data; name="b"; filename="evil"\r\n\r\n1\r\n--B--\r\n'
    )
    reply = _post_form(robyn_target.port, body, b"multipart/form-data; boundary=B")
    assert status_of(reply) == 400, body_of(reply)


def test_urlencoded_field_that_is_not_utf8_is_400(robyn_target: Served) -> None:
    """docs/migrating-from-robyn.md: "A text field that is not UTF-8 is a 400, not dropped"
    (and form_data holds urlencoded fields too). A multipart field with \\xff gets 400, but
    the same value urlencoded (a=%ff) is silently replaced with U+FFFD."""
    reply = _post_form(robyn_target.port, b"a=%ff", b"application/x-www-form-urlencoded")
    assert status_of(reply) == 400, body_of(reply)
