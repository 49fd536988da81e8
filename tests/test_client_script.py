"""The browser client ships inside the package: the wheel's package data names it, and the
script read from the installed package is what is served."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import roost
from roost.client_script import ClientScript, check_client_path
from roost.staticfiles import etag_matches

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_data_takes_the_script_into_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["roost"]
    shipped = [
        path.relative_to(Path(roost.__file__).parent).as_posix()
        for path in (Path(roost.__file__).parent / "static").iterdir()
    ]
    assert "static/client.js" in shipped
    for name in shipped:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


def test_the_script_and_its_etag() -> None:
    script = ClientScript()
    assert script.body == (Path(roost.__file__).parent / "static" / "client.js").read_bytes()
    assert script.etag == ClientScript().etag  # the same in every process
    assert etag_matches(f'W/{script.etag}, "x"', script.etag)
    assert not etag_matches('"x"', script.etag)
    assert check_client_path("/x.js") == "/x.js" and check_client_path(None) is None
