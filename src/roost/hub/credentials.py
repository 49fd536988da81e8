"""Broker URLs as they may be shown: in messages and logs, without their passwords."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redacted"]


def redacted(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` query argument)
    replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # malformed: hide whatever stands before the host, to be safe
        scheme, sep, rest = url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        return f"{scheme}{sep}{rest}"
    if password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(key, "***" if key == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    shown = urlunsplit(parts)
    if not parts.netloc and "://" in url:  # unix:///path keeps its slashes
        shown = shown.replace(":", "://", 1)
    return shown
