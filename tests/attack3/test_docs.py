"""Claims of docs/delivery.md and docs/scaling.md that can be checked without a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", ["delivery.md", "scaling.md"])
def test_every_relative_link_of_the_feature_docs_exists(page: str) -> None:
    """FINDING (docs). docs/delivery.md: "The client keeps the position of the last envelope or
    notice it saw for each room; roost's [browser client](client.md) does all of this" — there
    is no docs/client.md, and no browser client in the repository that reads envelopes or
    sends roost_resume (examples/chat/static/chat.js does neither). Users are left to write
    the resume logic the docs say roost provides."""
    text = (DOCS / page).read_text()
    missing = []
    for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text):
        if not (DOCS / target).exists():
            missing.append(target)
    assert missing == [], f"{page} links to missing pages: {missing}"
