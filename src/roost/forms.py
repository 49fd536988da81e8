"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data`` (RFC 7578)
into text fields and uploaded files, for ``request.form_data`` and ``request.files``.

The body is already whole in memory (bounded by the server's ``max_body_size``); parsing it
is bounded too: at most ``MAX_PARTS`` parts, each with at most ``MAX_PART_HEADERS`` header
lines. Malformed input raises HttpError 400 with a message saying what is wrong. The
multipart parser (python-multipart) is imported on the first form, not before.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from roost.protocol.errors import HttpError

__all__ = ["MAX_PARTS", "MAX_PART_HEADERS", "Form", "parse_form"]

#: The most fields and files one form may carry.
MAX_PARTS: Final = 1000
#: The most header lines one part of a multipart body may have.
MAX_PART_HEADERS: Final = 8


class Form:
    """A parsed form: ``fields`` (name → text) and ``files`` (file name → content)."""

    __slots__ = ("fields", "files")

    def __init__(
        self, fields: dict[str, str] | None = None, files: dict[str, bytes] | None = None
    ) -> None:
        self.fields: dict[str, str] = fields if fields is not None else {}
        self.files: dict[str, bytes] = files if files is not None else {}


def parse_form(content_type: str | None, body: bytes) -> Form:
    """The fields and files of a form ``body`` sent with ``content_type``.

    A urlencoded body gives fields; a multipart body gives fields (parts without a file name,
    decoded as UTF-8) and files (parts with one, keyed by that file name; a later file of the
    same name replaces an earlier one). Any other content type gives an empty form.
    """
    if not content_type:
        return Form()
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind != b"multipart/form-data":
        return Form()
    boundary = options.get(b"boundary")
    if content_type.lower().count("boundary=") > 1:
        # Two readers (a filtering proxy, roost) could pick different ones: refuse.
        raise HttpError(400, "multipart/form-data with more than one boundary parameter")
    if not boundary:
        raise HttpError(400, "multipart/form-data without a boundary parameter")
    return _Multipart(boundary).parse(body)


def _urlencoded(body: bytes) -> Form:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            max_num_fields=MAX_PARTS,
            strict_parsing=False,
            errors="strict",  # %ff is not UTF-8 either: refused, not replaced
        )
    except UnicodeDecodeError:
        raise HttpError(400, "form body is not valid UTF-8") from None
    except ValueError:
        raise HttpError(400, f"form has more than {MAX_PARTS} fields") from None
    return Form(dict(pairs))


class _Multipart:
    """One multipart body, parsed with python-multipart's push parser."""

    def __init__(self, boundary: bytes) -> None:
        self.boundary = boundary
        self.form = Form()
        self.parts = 0
        self.ended = False
        self.data: list[bytes] = []
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}

    def parse(self, body: bytes) -> Form:
        from python_multipart.exceptions import MultipartParseError
        from python_multipart.multipart import MultipartParser

        parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_end": self._end,
            },
            max_header_count=MAX_PART_HEADERS,
        )
        try:
            parser.write(body)
            parser.finalize()
        except MultipartParseError as exc:
            raise HttpError(400, f"malformed multipart body: {exc}") from None
        if not self.ended:
            raise HttpError(400, "malformed multipart body: no closing boundary")
        return self.form

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise HttpError(400, f"multipart body has more than {MAX_PARTS} parts")
        self.data = []
        self.headers = {}

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.data.append(data[start:end])

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def _header_end(self) -> None:
        name = self.header_name.lower()
        if name in self.headers:  # which one counts would be anyone's guess: refuse
            raise HttpError(400, f"multipart part repeats its {name.decode('latin-1')} header")
        self.headers[name] = self.header_value
        self.header_name = self.header_value = b""

    def _part_end(self) -> None:
        from python_multipart.multipart import parse_options_header

        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            raise HttpError(400, "multipart part without a Content-Disposition header")
        kind, options = parse_options_header(disposition)
        name = options.get(b"name")
        if kind != b"form-data" or name is None:
            raise HttpError(400, "multipart part is not form-data with a name")
        content = b"".join(self.data)
        filename = options.get(b"filename")
        try:
            if filename is not None:
                self.form.files[filename.decode("utf-8")] = content
            else:
                self.form.fields[name.decode("utf-8")] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "multipart field name or text value is not valid UTF-8") from None

    def _end(self) -> None:
        self.ended = True
