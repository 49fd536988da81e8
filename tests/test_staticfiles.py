"""Static files over a real socket: content types, ETags, HEAD, and no way out of the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roost import Roost
from tests.http_client import request


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "css" / "app.css").write_text("body{}")
    (root / "data.json").write_text('{"a":1}')
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    return root


def make_app(root: Path) -> Roost:
    app = Roost(__file__)
    app.serve_directory("/static", str(root), index_file="index.html")
    return app


async def test_files_types_and_index(serve, site: Path) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app(site)) as server:
        index = await request(server.port, "GET", "/static")
        assert (index.status, index.body) == (200, b"<h1>home</h1>")
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        css = await request(server.port, "GET", "/static/css/app.css")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        data = await request(server.port, "GET", "/static/data.json")
        assert data.json() == {"a": 1}
        big = await request(server.port, "GET", "/static/big.bin")
        assert big.status == 200
        assert big.body == (site / "big.bin").read_bytes()


async def test_etag_conditional_and_head(serve, site: Path) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app(site)) as server:
        first = await request(server.port, "GET", "/static/css/app.css")
        etag = first.headers["etag"]
        again = await request(
            server.port, "GET", "/static/css/app.css", headers={"If-None-Match": etag}
        )
        assert (again.status, again.body) == (304, b"")
        head = await request(server.port, "HEAD", "/static/css/app.css")
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == "6"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/css/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/link",
        "/static//etc/passwd",
        "/static/missing.txt",
        "/static/css",
    ],
)
async def test_no_escape_from_the_directory(serve, site: Path, path: str) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app(site)) as server:
        reply = await request(server.port, "GET", path)
        assert reply.status == 404
        assert b"top secret" not in reply.body


async def test_nul_byte_is_rejected(serve, site: Path) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app(site)) as server:
        reply = await request(server.port, "GET", "/static/index.html%00.txt")
        assert reply.status in (400, 404)
