"""Room history: what a room with history keeps, how positions in it are named, and what a
client that reconnects is told.

A room with history gives every message broadcast to it a position: an ``epoch`` (a random
name given to the room's history when it is created, and a new one whenever that history is
lost) and an ``offset`` (1 for the first message of an epoch, then one more per message). One
sequencer per deployment hands out positions: the process itself (one process), the relay
(``--processes N``) or Redis (many machines), so two publishers never share an offset.

Clients of an endpoint with history receive each room message in an envelope, a JSON text
message (``docs/delivery.md``)::

    {"roost": "message", "room": "lobby", "epoch": "5c0f9e2a41d7b683", "offset": 12,
     "data": "<the message as sent>"}

(``"data_b64"`` instead of ``"data"`` for a binary message, in base64). When a connection
joins such a room, roost first sends one of these, then the replayed messages, then live ones:

- ``{"roost": "joined", ...}``: no position was asked for;
- ``{"roost": "recovered", ...}``: every message after the position asked for follows;
- ``{"roost": "not_recovered", "reason": ..., ...}``: the history no longer covers it.

Their ``epoch`` and ``offset`` are the position just before the first message that follows.
This module holds the in-memory store the process and the relay use; ``roost.hub.redis``
keeps the same in Redis.
"""

from __future__ import annotations

import base64
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

__all__ = [
    "RESUME_PARAM",
    "HistoryRead",
    "HistoryUnavailable",
    "MemoryHistory",
    "Position",
    "RoomHistory",
    "control",
    "envelope",
    "new_epoch",
    "parse_resume",
]

#: The query parameter in which a reconnecting client names its positions.
RESUME_PARAM = "roost_resume"
#: Most rooms one ``roost_resume`` may name (128 positions fit well within the request
#: head's limit, 16 KiB by default).
MAX_RESUME_ROOMS = 128
#: Most rooms with history one in-memory store holds (the least recently used go first).
MAX_ROOMS = 100_000

#: Why a position was not recovered.
REASONS = ("epoch", "trimmed", "expired", "ahead", "unavailable")

P = TypeVar("P")


class HistoryUnavailable(Exception):
    """The room's history could not be reached (its store is down): the message was not
    sequenced, so no client received it (unless the link broke after the store received
    it, which the message says; it is never sent twice)."""


@dataclass(frozen=True, slots=True)
class RoomHistory:
    """How much history a room keeps: the last ``size`` messages (100), none older than
    ``ttl`` seconds (600). A room idle for ``ttl`` seconds loses its history, and with it
    its epoch."""

    size: int = 100
    ttl: float = 600.0

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"RoomHistory.size must be an int >= 1, not {self.size!r}")
        if self.size > 1_000_000:
            raise ValueError(f"RoomHistory.size must be at most 1,000,000, not {self.size!r}")
        ttl = self.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 86_400 * 30:
            raise ValueError(
                f"RoomHistory.ttl must be a number of seconds in (0, 30 days], not {ttl!r}"
            )


class Position(NamedTuple):
    """Where a client stopped in a room: the epoch and the offset of the last message it got
    (0: none of that epoch)."""

    epoch: str
    offset: int


@dataclass(slots=True)
class HistoryRead(Generic[P]):
    """What a joining connection is sent: ``kind`` ("joined", "recovered" or
    "not_recovered", with ``reason``), the room's ``epoch``, ``start`` (the offset just before
    the first entry) and the entries, (offset, payload), oldest first."""

    kind: str
    epoch: str
    start: int
    entries: list[tuple[int, P]]
    reason: str = ""
    total: int = -1  # entries owed in all, when ``entries`` is only the first page of them

    @property
    def owed(self) -> int:
        """How many messages follow the notice in all (this page and the ones after it)."""
        return max(self.total, len(self.entries))


def new_epoch() -> str:
    """A fresh epoch: 16 random hex digits."""
    return os.urandom(8).hex()


def parse_resume(raw: str) -> dict[str, Position]:
    """The positions in a ``roost_resume`` query value, a JSON object ``{room: [epoch,
    offset]}``; raises ValueError saying what is wrong."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError(
            f"{RESUME_PARAM} must be a JSON object {{room: [epoch, offset]}}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"{RESUME_PARAM} must be a JSON object {{room: [epoch, offset]}}")
    if len(value) > MAX_RESUME_ROOMS:
        raise ValueError(f"{RESUME_PARAM} names {len(value)} rooms; at most {MAX_RESUME_ROOMS}")
    positions: dict[str, Position] = {}
    for room, where in value.items():
        if (
            not isinstance(where, list)
            or len(where) != 2
            or not isinstance(where[0], str)
            or not 0 < len(where[0]) <= 64
            or not isinstance(where[1], int)
            or isinstance(where[1], bool)
            or not 0 <= where[1] < 2**63
        ):
            raise ValueError(
                f"{RESUME_PARAM}: the position of room {room[:64]!r} must be [epoch, offset], "
                "an epoch string and an offset >= 0"
            )
        positions[room] = Position(where[0], where[1])
    return positions


def envelope(room: str, epoch: str, offset: int, payload: str | bytes) -> str:
    """The JSON text a client of an endpoint with history receives for one room message."""
    if isinstance(payload, str):
        body: dict[str, Any] = {"data": payload}
    else:
        body = {"data_b64": base64.b64encode(payload).decode("ascii")}
    return orjson.dumps(
        {"roost": "message", "room": room, "epoch": epoch, "offset": offset, **body}
    ).decode()


def control(kind: str, room: str, epoch: str, offset: int, **extra: Any) -> str:
    """A message from roost itself about ``room`` (``joined``, ``recovered``, ...)."""
    return orjson.dumps(
        {"roost": kind, "room": room, "epoch": epoch, "offset": offset, **extra}
    ).decode()


class _Room(Generic[P]):
    __slots__ = ("entries", "epoch", "expired", "last", "touched", "ttl")

    def __init__(self, size: int, ttl: float) -> None:
        self.epoch = new_epoch()
        self.last = 0
        self.expired = 0  # the newest offset dropped for its age (not for the size)
        self.entries: deque[tuple[int, float, P]] = deque(maxlen=size)
        self.touched = 0.0
        self.ttl = ttl

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and entries[0][1] + self.ttl < now:
            self.expired = entries.popleft()[0]


class MemoryHistory(Generic[P]):
    """Room histories in this process: the sequencer and store of one process, and of the
    relay. Keys name rooms; payloads are kept as given. ``clock`` gives seconds (monotonic).

    Holds at most ``max_rooms`` rooms: past that, the room used least recently loses its
    history (its next message starts a new epoch). Rooms idle past their ttl are forgotten
    a few at a time as others are used, so idle rooms do not keep their messages.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_rooms: int = MAX_ROOMS
    ) -> None:
        self._rooms: dict[Any, _Room[P]] = {}
        self._clock = clock
        self.max_rooms = max_rooms

    def __len__(self) -> int:
        return len(self._rooms)

    def _room(self, key: Any, config: RoomHistory, now: float) -> _Room[P]:
        rooms = self._rooms
        room = rooms.pop(key, None)  # re-inserted last: the dict keeps rooms in use order
        if room is not None and room.touched + room.ttl < now:
            room = None  # idle past its ttl: its history is gone
        if room is not None and (room.entries.maxlen != config.size or room.ttl != config.ttl):
            kept = _Room[P](config.size, config.ttl)  # the settings changed: keep what fits
            kept.epoch, kept.last, kept.expired = room.epoch, room.last, room.expired
            kept.entries.extend(room.entries)
            room = kept
        if room is None:
            room = _Room(config.size, config.ttl)
            while len(rooms) >= self.max_rooms:
                del rooms[next(iter(rooms))]
        for _ in range(2):  # forget up to two rooms idle past their ttl, oldest first
            oldest = next(iter(rooms.values()), None)
            if oldest is None or oldest.touched + oldest.ttl >= now:
                break
            del rooms[next(iter(rooms))]
        room.touched = now
        room.expire(now)
        rooms[key] = room
        return room

    def append(self, key: Any, payload: P, config: RoomHistory) -> tuple[str, int]:
        """Give ``payload`` the room's next position, keep it, and return (epoch, offset)."""
        room = self._room(key, config, self._clock())
        room.last += 1
        room.entries.append((room.last, room.touched, payload))
        return room.epoch, room.last

    def read(
        self,
        key: Any,
        config: RoomHistory,
        since: Position | None,
        replay: int = 0,
        limit: int = 0,
    ) -> HistoryRead[P]:
        """What a connection joining room ``key`` gets: every entry after ``since`` when the
        history still holds them all, or else (and when ``since`` is None) the last
        ``replay`` entries; only the oldest ``limit`` of them when ``limit`` is not 0 (the
        caller reads the rest after them)."""
        room = self._room(key, config, self._clock())
        entries = room.entries
        if since is not None:
            reason = _uncovered(room, since)
            if not reason:
                kept = [(off, p) for off, _, p in entries if off > since.offset]
                page = _page(kept, limit)
                return HistoryRead("recovered", room.epoch, since.offset, page, "", len(kept))
        else:
            reason = ""
        tail = list(entries)[-replay:] if replay > 0 else []
        start = tail[0][0] - 1 if tail else room.last
        kind = "not_recovered" if since else "joined"
        page = _page([(off, p) for off, _, p in tail], limit)
        return HistoryRead(kind, room.epoch, start, page, reason, len(tail))


def _page(entries: list[tuple[int, P]], limit: int) -> list[tuple[int, P]]:
    return entries[:limit] if limit > 0 else entries


def _uncovered(room: _Room[Any], since: Position) -> str:
    """Why the entries after ``since`` cannot all be replayed, or "" when they can."""
    if since.epoch != room.epoch:
        return "epoch"
    if since.offset > room.last:
        return "ahead"
    first = room.entries[0][0] if room.entries else room.last + 1
    if since.offset + 1 < first:
        return "expired" if room.expired > since.offset else "trimmed"
    return ""
