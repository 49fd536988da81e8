"""Robyn's ``robyn.status_codes``: ``HTTP_200_OK``, ``HTTP_404_NOT_FOUND``, ... one constant
for each status of ``http.HTTPStatus``."""

from __future__ import annotations

import http

for _status in http.HTTPStatus:
    globals()[f"HTTP_{_status.value}_{_status.name}"] = _status.value

del _status
