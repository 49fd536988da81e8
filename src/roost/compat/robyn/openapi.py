"""Robyn's ``robyn.openapi``: the document's info (the document itself is roost's, basic)."""

from roost.openapi import (
    Components,
    Contact,
    ExternalDocumentation,
    License,
    OpenAPI,
    OpenAPIInfo,
    Server,
)

__all__ = [
    "Components",
    "Contact",
    "ExternalDocumentation",
    "License",
    "OpenAPI",
    "OpenAPIInfo",
    "Server",
]
