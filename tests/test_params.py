"""Parameter plans: which parameter gets the subject, dependencies, path and query values."""

from __future__ import annotations

import pytest

from roost import Request
from roost.params import plan, resolve
from roost.protocol.errors import HttpError
from roost.requests import QueryParams


def sources(func, subject="request", path=()):  # type: ignore[no-untyped-def]
    return {p.name: p.source for p in plan(func, subject=subject, path_params=path)}


def test_subject_by_name_annotation_or_first_bare_parameter() -> None:
    def by_name(x: int, request):  # type: ignore[no-untyped-def]
        ...

    def by_annotation(req: Request, count: int = 1):  # type: ignore[no-untyped-def]
        ...

    def first_bare(r, q: str = ""):  # type: ignore[no-untyped-def]
        ...

    def no_subject(count: int, name: str):  # type: ignore[no-untyped-def]
        ...

    assert sources(by_name) == {"x": "query", "request": "subject"}
    assert sources(by_annotation) == {"req": "subject", "count": "query"}
    assert sources(first_bare) == {"r": "subject", "q": "query"}
    assert sources(no_subject, path=("name",)) == {"count": "query", "name": "path"}


def test_resolve_coerces_and_rejects() -> None:
    def handler(
        websocket,
        count: int,
        ratio: float = 1.0,
        flag: bool = False,
        tags: list[str] | None = None,
        global_dependencies=None,
    ):  # type: ignore[no-untyped-def]
        ...

    params = plan(handler, subject="websocket")
    kwargs = resolve(
        params,
        subject="ws",
        query=QueryParams("count=3&flag=yes&tags=a&tags=b%20c"),
        path_params={},
        global_deps={"g": 1},
        router_deps={},
    )
    assert kwargs == {
        "websocket": "ws",
        "count": 3,
        "ratio": 1.0,
        "flag": True,
        "tags": ["a", "b c"],
        "global_dependencies": {"g": 1},
    }
    with pytest.raises(HttpError) as missing:
        resolve(
            params,
            subject=None,
            query=QueryParams(""),
            path_params={},
            global_deps={},
            router_deps={},
        )
    assert missing.value.status == 400 and "count" in missing.value.reason
    with pytest.raises(HttpError) as bad:
        resolve(
            params,
            subject=None,
            query=QueryParams("count=x"),
            path_params={},
            global_deps={},
            router_deps={},
        )
    assert bad.value.status == 400 and "int" in bad.value.reason
