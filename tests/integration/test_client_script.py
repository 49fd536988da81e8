"""Every app serves roost's browser client at /roost/client.js, over a real socket: the
packaged script, its ETag and Cache-Control, 304 for a current copy, HEAD, nothing in the
OpenAPI document; elsewhere with ``client_path``, nowhere with None, and never over a route of
the app's own."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from roost import Roost
from tests.http_client import request

SCRIPT = resources.files("roost").joinpath("static", "client.js").read_bytes()


async def test_the_script_is_served_with_its_etag_and_revalidated(serve: Any) -> None:
    app = Roost(__file__, openapi=True)
    async with serve(app) as server:
        got = await request(server.port, "GET", "/roost/client.js")
        assert got.status == 200
        assert got.body == SCRIPT
        assert b"class RoostSocket" in got.body
        assert got.headers["content-type"] == "text/javascript; charset=utf-8"
        assert got.headers["cache-control"] == "no-cache"
        assert got.headers["x-content-type-options"] == "nosniff"
        etag = got.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"') and len(etag) == 18

        head = await request(server.port, "HEAD", "/roost/client.js")
        assert head.status == 200 and head.body == b""
        assert head.headers["etag"] == etag
        assert head.headers["content-length"] == str(len(SCRIPT))

        for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = await request(
                server.port, "GET", "/roost/client.js", headers={"If-None-Match": match}
            )
            assert again.status == 304, match
            assert again.body == b"" and again.headers["etag"] == etag
        stale = await request(
            server.port, "GET", "/roost/client.js", headers={"If-None-Match": '"other"'}
        )
        assert stale.status == 200 and stale.body == SCRIPT

        document = (await request(server.port, "GET", "/openapi.json")).json()
        assert isinstance(document, dict) and "/roost/client.js" not in document["paths"]
        assert (await request(server.port, "POST", "/roost/client.js")).status == 405


async def test_every_process_serves_the_same_etag(serve: Any) -> None:
    one, two = Roost(__file__), Roost(__file__)
    async with serve(one) as a, serve(two) as b:
        first = await request(a.port, "GET", "/roost/client.js")
        second = await request(b.port, "GET", "/roost/client.js")
    assert first.headers["etag"] == second.headers["etag"]


async def test_another_path_or_none(serve: Any) -> None:
    moved = Roost(__file__, client_path="/assets/roost.js")
    off = Roost(__file__, client_path=None)
    async with serve(moved) as a, serve(off) as b:
        assert (await request(a.port, "GET", "/assets/roost.js")).body == SCRIPT
        assert (await request(a.port, "GET", "/roost/client.js")).status == 404
        assert (await request(b.port, "GET", "/roost/client.js")).status == 404


async def test_the_apps_own_route_wins(serve: Any, tmp_path: Any) -> None:
    own = Roost(__file__)

    @own.get("/roost/client.js")
    def mine():  # type: ignore[no-untyped-def]
        return "the app's own"

    (tmp_path / "roost").mkdir()
    (tmp_path / "roost" / "client.js").write_text("from the directory")
    served = Roost(__file__)
    served.serve_directory("/", str(tmp_path))
    async with serve(own) as a, serve(served) as b:
        assert (await request(a.port, "GET", "/roost/client.js")).body == b"the app's own"
        assert (await request(b.port, "GET", "/roost/client.js")).body == b"from the directory"


@pytest.mark.parametrize("bad", ["roost.js", "", "/a?b", "/a#b", 5])
def test_a_client_path_that_is_not_a_path_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="client_path must be a path"):
        Roost(__file__, client_path=bad)
