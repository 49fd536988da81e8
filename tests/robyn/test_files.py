"""Robyn's file helpers on roost: ``serve_file`` as an attachment and ``serve_html``, returned
without ``await`` from sync and async handlers, and ``html``."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.compat.robyn import Robyn, html, serve_file, serve_html
from tests.http_client import request


async def test_serve_file_serve_html_and_html(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    (tmp_path / "page.html").write_text("<p>page</p>")
    app = Robyn(__file__)

    @app.get("/download")
    def download():  # type: ignore[no-untyped-def]
        return serve_file(str(tmp_path / "report.csv"))

    @app.get("/renamed")
    async def renamed():  # type: ignore[no-untyped-def]
        return serve_file(str(tmp_path / "report.csv"), file_name='q3 "final".csv')

    @app.get("/page")
    def page():  # type: ignore[no-untyped-def]
        return serve_html(str(tmp_path / "page.html"))

    @app.get("/missing")
    def missing():  # type: ignore[no-untyped-def]
        return serve_file(str(tmp_path / "nothing.txt"))

    @app.get("/inline")
    def inline_html():  # type: ignore[no-untyped-def]
        return html("<h1>hi</h1>")

    async with serve(app) as server:
        download_reply = await request(server.port, "GET", "/download")
        renamed_reply = await request(server.port, "GET", "/renamed")
        page_reply = await request(server.port, "GET", "/page")
        missing_reply = await request(server.port, "GET", "/missing")
        inline_reply = await request(server.port, "GET", "/inline")
    assert download_reply.body == b"a,b\n1,2\n"
    assert download_reply.headers["content-type"] == "text/csv"
    assert download_reply.headers["content-disposition"] == 'attachment; filename="report.csv"'
    assert renamed_reply.headers["content-disposition"] == (
        'attachment; filename="q3 \\"final\\".csv"'
    )
    assert page_reply.body == b"<p>page</p>"
    assert page_reply.headers["content-type"] == "text/html; charset=utf-8"
    assert missing_reply.status == 404
    assert inline_reply.headers["content-type"] == "text/html; charset=utf-8"


async def test_a_file_name_that_cannot_go_in_a_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        await serve_file(str(tmp_path / "x"), file_name="evil\r\nSet-Cookie: a=b")
