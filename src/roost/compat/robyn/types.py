"""Robyn's ``robyn.types``: the annotations that pick a part of the request."""

from roost.requests import Url
from roost.types import (
    Body,
    Files,
    FormData,
    IPAddress,
    JsonBody,
    Method,
    PathParams,
    RequestBody,
    RequestMethod,
)

RequestURL = Url

__all__ = [
    "Body",
    "Files",
    "FormData",
    "IPAddress",
    "JsonBody",
    "Method",
    "PathParams",
    "RequestBody",
    "RequestMethod",
    "RequestURL",
]
