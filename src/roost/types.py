"""Annotations that pick a part of the request for a handler parameter, whatever its name:
``def create(data: JsonBody)``, ``def upload(files: Files)``. Reserved parameter names do the
same without an annotation (``body``, ``headers``, ``form_data``, ... see ``roost.params``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NewType

__all__ = [
    "Body",
    "Files",
    "FormData",
    "IPAddress",
    "Identity",
    "JsonBody",
    "Method",
    "PathParams",
    "RequestBody",
    "RequestMethod",
]

PathParams = NewType("PathParams", dict[str, str])
Method = NewType("Method", str)
FormData = NewType("FormData", dict[str, str])
Files = NewType("Files", dict[str, bytes])
IPAddress = NewType("IPAddress", str)

#: The methods ``request.method`` may hold.
RequestMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
#: What ``request.body`` holds.
RequestBody = bytes


class Body:
    """Annotate a parameter with Body (or a subclass) to receive the raw body (bytes)."""


class JsonBody:
    """Annotate a parameter with JsonBody (or a subclass) to receive the body parsed as JSON;
    a body that is not JSON is answered with 400 before the handler runs."""


@dataclass
class Identity:
    """Who an authentication handler says made the request: ``claims`` (name → value)."""

    claims: dict[str, str] = field(default_factory=dict)
