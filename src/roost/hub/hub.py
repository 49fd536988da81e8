"""Delivery across the deployment: the local registry, plus a broker when there is one;
rooms with history (sequenced, replayed on join with no gap and no duplicate); presence with
metadata, and its join and leave events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from roost.hub import messages
from roost.hub.broker import Broker
from roost.hub.history import (
    HistoryRead,
    HistoryUnavailable,
    MemoryHistory,
    Position,
    RoomHistory,
    control,
    envelope,
)
from roost.hub.messages import Codec, Undecodable
from roost.hub.registry import Registry, RemotePresence
from roost.server.websocket import WebSocketChannel

logger = logging.getLogger("roost.hub")

#: Largest metadata of one membership, as JSON (bytes).
MAX_META = 4096
#: Most bytes of live messages a joining member's catch-up holds while its replay goes out;
#: past that it drops them and reads them from the history again.
CATCH_UP_HOLDS = 1024 * 1024
#: Messages read from the history at a time (a page), when replaying.
READ_PAGE = 64
#: Longest wait at start for the presence of the other nodes (seconds).
PEERS_WAIT = 2.0
#: Times in a row a catch-up reads the history again without moving on (more arrived than it
#: could hold meanwhile, or what it held had a gap) before it tells its members what they
#: missed (``not_recovered``, ``trimmed``) and lets them go live.
MAX_REREADS = 8
#: About how many bytes of presence one message of a node's state carries.
STATE_PART = 1024 * 1024
#: Returns the history of room ``room`` of endpoint ``endpoint``, or None for none.
HistoryOf = Callable[[str, str], RoomHistory | None]


def room_key(endpoint: str, room: str) -> str:
    """The name of a room's history in a shared store (unambiguous for any two strings)."""
    return f"{len(endpoint)}:{endpoint}:{room}"


class _CatchUp:
    """Members of one room whose history is being replayed: room messages that arrive
    meanwhile wait in ``buffer``; once the replay is out, the members get what follows
    ``floor`` directly, until live delivery is known to be past ``floor``."""

    __slots__ = ("buffer", "buffered", "conns", "floor", "limit", "overflowed")

    def __init__(self, conns: set[str], limit: int = 1024 * 1024) -> None:
        self.conns = conns
        self.buffer: list[tuple[str, int, str, str | None]] | None = []
        self.buffered = 0  # bytes of text in ``buffer``
        self.floor = Position("", 0)
        self.limit = limit  # most bytes ``buffer`` holds; past it, they are read again
        self.overflowed = False


class Hub:
    """What the app calls to reach connections by endpoint, room or id, wherever they are.

    Without a broker only this process's connections exist (the embedded default). With
    one, every call reaches every node; each node fans out to its own connections.
    """

    def __init__(self, broker: Broker | None = None, *, codec: Codec | None = None) -> None:
        self.registry = Registry()
        self.broker = broker
        self.node_id = os.urandom(8).hex()
        self._remote = RemotePresence()  # other nodes' connections, for replicated brokers
        self._codec = codec or Codec()
        self._unreadable: set[tuple[str, str]] = set()  # (node, reason) already logged
        #: Messages handed to the broker (whether or not it could send them on).
        self.published = 0
        #: The history of each room (None: none); set by the app from its endpoints.
        self.history_of: HistoryOf = lambda endpoint, room: None
        #: Endpoints whose rooms are told when a member joins or leaves.
        self.presence_events: set[str] = set()
        #: Endpoints whose clients read JSON objects with the key "roost" as roost's own
        #: messages (history, presence events): the app may not send such objects there.
        self.reserved: set[str] = set()
        self._memory = MemoryHistory[messages.Broadcast]()  # the store without a broker
        self._resume: dict[str, dict[str, Position]] = {}  # id -> room -> position asked
        self._catching: dict[tuple[str, str], list[_CatchUp]] = {}
        self._marks: dict[tuple[str, str], Position] = {}  # last position delivered here
        self._tasks: set[asyncio.Task[None]] = set()
        #: Room messages whose history could not be reached, so no client got them.
        self.unsequenced = 0
        self._states: set[str] = set()  # nodes whose presence arrived since start
        self._states_changed = asyncio.Event()

    # -- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the broker, if any (called when the server starts)."""
        self.node_id = os.urandom(8).hex()  # per process: workers are forked from one app
        if self.broker is not None:
            self.broker.on_reconnect(self._relinked)
            await self.broker.start(self.node_id, self._deliver, self._sequenced)
            self._states = set()
            self._states_changed = asyncio.Event()
            self._announce()
            await self._await_peers()

    async def stop(self) -> None:
        """Leave the broker, if any (called after shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        if self.broker is not None:
            self._publish(messages.Gone())
            await asyncio.sleep(0)
            await self.broker.stop(self.node_id)

    def _announce(self) -> None:
        """Tell the other nodes this one is here (with its connections, when presence is
        replicated through messages); each answers with its own state."""
        hello = messages.Hello()
        if self.broker is None or not self.broker.replicated_presence:
            self._publish(hello)
            return
        parts = self._local_state()
        hello.connections, hello.meta = parts[0]
        self._publish(hello)
        for number, (state, meta) in enumerate(parts[1:], 1):
            self._publish(messages.State(to="", part=number, connections=state, meta=meta))

    async def _await_peers(self) -> None:
        """Wait (at most PEERS_WAIT seconds) until every node the broker knew of has sent its
        presence, so that ``presence()`` is whole as soon as this node serves."""
        broker = self.broker
        if broker is None or not broker.replicated_presence or not broker.peers:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PEERS_WAIT
        while len(self._states) < broker.peers and loop.time() < deadline:
            self._states_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._states_changed.wait(), deadline - loop.time())

    def _relinked(self) -> None:
        """The broker's link came back after an outage. What other nodes published meanwhile
        is lost (a node may even have gone), so forget them and announce this one again.
        Room messages sequenced meanwhile are replayed from the history to the live members
        now, not only once the next one arrives (there may be no next one)."""
        self._remote = RemotePresence()
        self._announce()
        for (endpoint, room), mark in list(self._marks.items()):
            live = self.registry.live_members(endpoint, room)
            if live:
                group = self._hold((endpoint, room), set(live))
                self._spawn(self._catch_up(endpoint, room, group, mark, 0, notify=False))

    def _local_state(
        self,
    ) -> list[tuple[dict[str, tuple[str, list[str]]], dict[str, dict[str, Any]]]]:
        """This node's connections and their metadata, in parts of about STATE_PART bytes
        each (so that no message nears the relay's frame limit); at least one part."""
        registry = self.registry
        parts = []
        state: dict[str, tuple[str, list[str]]] = {}
        meta: dict[str, dict[str, Any]] = {}
        size = 0
        for cid in registry.members():
            endpoint = registry.endpoint_of(cid)
            if endpoint is None:
                continue
            rooms = sorted(registry.rooms_of(cid))
            state[cid] = (endpoint, rooms)
            size += 64 + len(endpoint) + sum(len(r) + 2 for r in rooms)
            own = registry.room_meta(cid)
            if own:
                meta[cid] = own
                size += len(orjson.dumps(own))
            if size >= STATE_PART:
                parts.append((state, meta))
                state, meta, size = {}, {}, 0
        if state or not parts:
            parts.append((state, meta))
        return parts

    def _send_state(self, to: str) -> None:
        for number, (state, meta) in enumerate(self._local_state()):
            self._publish(messages.State(to=to, part=number, connections=state, meta=meta))

    def _publish(self, message: messages.Message) -> None:
        if self.broker is not None:
            message.n = self.node_id
            self.published += 1
            self.broker.publish(self._codec.encode(message))

    def _presence_changed(self, conn_id: str) -> None:
        broker = self.broker
        if broker is None:
            return
        endpoint = self.registry.endpoint_of(conn_id)
        entry = None if endpoint is None else (endpoint, sorted(self.registry.rooms_of(conn_id)))
        meta = self.registry.room_meta(conn_id) if entry is not None else {}
        if broker.replicated_presence:
            if entry is None:
                self._publish(messages.Presence(id=conn_id))
            else:
                self._publish(
                    messages.Presence(id=conn_id, endpoint=entry[0], rooms=entry[1], meta=meta)
                )
        else:
            broker.presence_update(conn_id, entry, meta)

    # -- local connections -------------------------------------------------------------------

    def add(
        self,
        conn_id: str,
        endpoint: str,
        channel: WebSocketChannel,
        resume: dict[str, Position] | None = None,
    ) -> None:
        """A connection opened here; ``resume``: the positions its client asked for, per
        room (used when it joins a room with history)."""
        self.registry.add(conn_id, endpoint, channel)
        if resume:
            self._resume[conn_id] = resume
        self._presence_changed(conn_id)

    def remove(self, conn_id: str) -> None:
        """A connection here ended."""
        registry = self.registry
        if conn_id in registry:
            endpoint = registry.endpoint_of(conn_id) or ""
            rooms = registry.rooms_of(conn_id)
            registry.remove(conn_id)
            self._resume.pop(conn_id, None)
            self._presence_changed(conn_id)
            for room in rooms:
                self._left(endpoint, room, conn_id)

    def rooms_of(self, conn_id: str) -> frozenset[str]:
        """The rooms of a local connection."""
        return self.registry.rooms_of(conn_id)

    # -- delivery ----------------------------------------------------------------------------

    async def broadcast(
        self,
        endpoint: str,
        data: str | bytes,
        *,
        room: str | None = None,
        exclude: str | None = None,
    ) -> int:
        """Deliver to every connection of ``endpoint`` (or its ``room``); the local count.

        A room with history gives the message its next position first (raising
        HistoryUnavailable when its store cannot be reached: then no client gets it), and
        delivers it in an envelope; with a broker, local connections get it once the
        sequencer hands it back, and the count is of the local members."""
        if room is not None:
            _check_room(room)
        config = None if room is None else self.history_of(endpoint, room)
        if config is not None and room is not None:
            return await self._broadcast_sequenced(endpoint, room, data, exclude, config)
        self.check_outgoing(endpoint, data)
        sent = self.registry.broadcast(endpoint, data, room=room, exclude=exclude)
        if self.broker is not None:
            text, binary = (data, None) if isinstance(data, str) else (None, bytes(data))
            self._publish(
                messages.Broadcast(
                    endpoint=endpoint, room=room, exclude=exclude, text=text, binary=binary
                )
            )
        return sent

    def _announce_room(self, endpoint: str, room: str, text: str, about: str) -> None:
        """Tell every member of a room but ``about``, wherever, held ones included (presence
        events are not room messages: no position, no history)."""
        self.registry.broadcast(endpoint, text, room=room, exclude=about, held=True)
        self._publish(
            messages.Broadcast(endpoint=endpoint, room=room, exclude=about, text=text, control=True)
        )

    async def _broadcast_sequenced(
        self, endpoint: str, room: str, data: str | bytes, exclude: str | None, config: RoomHistory
    ) -> int:
        # Every member of a room with history gets every message, its sender included:
        # positions never skip, so a client can tell a loss from a message not meant for it.
        del exclude
        text, binary = (data, None) if isinstance(data, str) else (None, bytes(data))
        message = messages.Broadcast(endpoint=endpoint, room=room, text=text, binary=binary)
        broker = self.broker
        if broker is None:
            epoch, offset = self._memory.append(room_key(endpoint, room), message, config)
            return self._deliver_sequenced(epoch, offset, message)
        message.n = self.node_id
        try:
            await broker.sequence(room_key(endpoint, room), config, self._codec.encode(message))
        except HistoryUnavailable:
            self.unsequenced += 1
            raise
        self.published += 1
        return len(self.registry.members(endpoint, room))

    def _sequenced(self, epoch: str, offset: int, body: bytes) -> None:
        """A sequenced message from the broker (this node's own included)."""
        try:
            message = self._codec.decode(body)
        except Undecodable as exc:
            self._undecodable(exc)
            return
        if not isinstance(message, messages.Broadcast) or message.room is None:
            logger.warning(
                "ignoring a sequenced %s from node %s", type(message).__name__, message.n
            )
            return
        try:
            self._deliver_sequenced(epoch, offset, message)
        except Exception:
            logger.exception("could not deliver a room message from node %s", message.n)

    def _deliver_sequenced(self, epoch: str, offset: int, message: messages.Broadcast) -> int:
        """Deliver a room message at (epoch, offset) to the local members: live ones at once
        (never twice, never out of order: a gap is filled from the history first), members
        being caught up through their catch-up."""
        endpoint, room = message.endpoint, message.room
        assert room is not None
        key = (endpoint, room)
        registry = self.registry
        groups = list(self._catching.get(key, ()))
        if not groups and not registry.has_room(endpoint, room):
            self._marks.pop(key, None)  # no member here: nothing to keep in order
            return 0
        text = envelope(room, epoch, offset, _payload(message.text, message.binary) or "")
        mark = self._marks.get(key)
        sent = 0
        if mark is not None and mark.epoch == epoch and offset <= mark.offset:
            return 0  # delivered already
        self._marks[key] = Position(epoch, offset)
        missed = None  # where live members stopped, when they missed messages before this
        if mark is not None and mark.epoch == epoch and offset > mark.offset + 1:
            missed = mark  # the broker dropped mark+1 .. offset-1 on their way here
        elif mark is not None and mark.epoch != epoch:
            # The history was lost (a new store): what live members had may be gone. Say so,
            # then give them what the new history holds before this message.
            notice = control("not_recovered", room, epoch, 0, reason="epoch", replay=0)
            registry.broadcast(endpoint, notice, room=room)
            if offset > 1:
                missed = Position(epoch, 0)
        if missed is not None:
            live = registry.live_members(endpoint, room)
            if live:
                group = self._hold(key, set(live))
                assert group.buffer is not None
                group.buffer.append((epoch, offset, text, message.exclude))
                self._spawn(self._catch_up(endpoint, room, group, missed, 0, notify=False))
        else:
            sent = registry.broadcast(endpoint, text, room=room, exclude=message.exclude)
        for group in groups:
            self._offer(key, group, epoch, offset, text, message.exclude)
        return sent

    # -- catching up -------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hold(self, key: tuple[str, str], conns: set[str]) -> _CatchUp:
        """Hold ``conns`` (members of room ``key``) for a catch-up."""
        for cid in conns:
            self.registry.hold(cid, key[1])
        group = _CatchUp(conns)
        self._catching.setdefault(key, []).append(group)
        return group

    def _release(self, key: tuple[str, str], group: _CatchUp) -> None:
        for cid in group.conns:
            self.registry.release(cid, key[1])
        groups = self._catching.get(key)
        if groups is not None:
            if group in groups:
                groups.remove(group)
            if not groups:
                del self._catching[key]

    def _send_group(self, group: _CatchUp, room: str, text: str, exclude: str | None) -> None:
        registry = self.registry
        for cid in list(group.conns):
            if not registry.is_held(cid, room):
                group.conns.discard(cid)  # it left the room or closed
            elif cid != exclude:
                registry.send_to(cid, text)

    def _offer(
        self,
        key: tuple[str, str],
        group: _CatchUp,
        epoch: str,
        offset: int,
        text: str,
        exclude: str | None,
    ) -> None:
        """A room message reaches a group being caught up."""
        if group.buffer is not None:  # still reading or sending the history
            if group.overflowed:
                return  # they are in the history: read again later
            group.buffered += len(text)
            if group.buffered > group.limit:
                group.overflowed = True
                group.buffer.clear()
                group.buffered = 0
                return
            group.buffer.append((epoch, offset, text, exclude))
            return
        endpoint, room = key
        floor = group.floor
        if epoch != floor.epoch:  # the history was lost since the group's replay
            notice = control("not_recovered", room, epoch, 0, reason="epoch", replay=0)
            self._send_group(group, room, notice, None)
            floor = group.floor = Position(epoch, 0)
        if offset > floor.offset + 1:  # a gap: fill it from the history, then this one
            group.buffer = [(epoch, offset, text, exclude)]
            self._spawn(self._catch_up(endpoint, room, group, floor, 0, notify=False))
            return
        if offset > floor.offset:
            self._send_group(group, room, text, exclude)
            group.floor = Position(epoch, offset)
        if offset >= floor.offset:
            self._release(key, group)  # live delivery is past what the group was sent

    async def _catch_up(
        self,
        endpoint: str,
        room: str,
        group: _CatchUp,
        since: Position | None,
        replay: int,
        *,
        notify: bool = True,
        config: RoomHistory | None = None,
    ) -> None:
        """Send a held group what it missed, then let it go live with no gap and no
        duplicate. ``notify``: tell the clients how it went (``joined``, ``recovered`` or
        ``not_recovered``); without it (a gap repair) only a failure is told.

        The history is read a page at a time (READ_PAGE messages), each page sent at the
        pace the client reads, then the next is read from where it stopped; live messages
        that arrive meanwhile wait in the group (up to ``group.limit`` bytes, past which they
        are dropped there and read from the history instead)."""
        key = (endpoint, room)
        config = config or self.history_of(endpoint, room)
        read = await self._read_or_say(endpoint, room, config, since, replay)
        if notify or read.kind == "not_recovered":
            self._notice(group, room, read)
        floor = Position(read.epoch, read.start)
        paced = notify and len(group.conns) == 1
        rereads = 0
        while True:
            before = floor
            for offset, payload in read.entries:
                if read.epoch == floor.epoch and offset <= floor.offset:
                    continue
                if isinstance(payload, bytes):
                    message = self._codec.decode(payload)
                    assert isinstance(message, messages.Broadcast)
                else:
                    message = payload
                data = _payload(message.text, message.binary) or ""
                text = envelope(room, read.epoch, offset, data)
                if paced:
                    await self._send_paced(group, room, text, message.exclude)
                else:
                    self._send_group(group, room, text, message.exclude)
                floor = Position(read.epoch, offset)
            if not group.conns or read.reason == "unavailable":
                break
            if floor != before:
                rereads = 0  # progress: only a catch-up that stops moving gives up
            more = len(read.entries) >= READ_PAGE  # the page was full: read on
            if not more and not group.overflowed:
                floor, gap = self._flush(group, room, floor)
                if not gap:
                    break
                rereads += 1  # the buffer skips messages the history still has
            if group.overflowed:
                group.overflowed = False
                group.buffer = []
                group.buffered = 0
                rereads += 1
            if rereads > MAX_REREADS:
                # The room moves on faster than its history can be read here: say what is
                # missed, and go live from the last message this node has delivered.
                live = self._marks.get(key) or floor
                notice = control(
                    "not_recovered", room, live.epoch, live.offset, reason="trimmed", replay=0
                )
                self._send_group(group, room, notice, None)
                floor = live
                break
            read = await self._read_or_say(endpoint, room, config, floor, 0)
            if read.kind != "recovered":  # gone meanwhile: say so, and go on from there
                self._notice(group, room, read)
                floor = Position(read.epoch, read.start)
        group.buffer = None
        group.floor = floor
        mark = self._marks.get(key)
        if (
            self.broker is None
            or read.reason == "unavailable"
            or (mark is not None and mark.epoch == floor.epoch and mark.offset >= floor.offset)
        ):
            self._release(key, group)
        # Otherwise live delivery may still bring messages the group has had: it stays held
        # (and is sent what is newer directly) until the first message past ``floor``.

    def _flush(self, group: _CatchUp, room: str, floor: Position) -> tuple[Position, bool]:
        """Send the live messages a group holds past ``floor``, in order; stop at a gap (a
        message the broker dropped on its way here): (the new floor, whether one was met)."""
        buffered = group.buffer or []
        group.buffer, group.buffered = [], 0
        for epoch, offset, text, exclude in buffered:
            if epoch == floor.epoch and offset <= floor.offset:
                continue
            if epoch != floor.epoch or offset > floor.offset + 1:
                return floor, True  # read from the history what comes next instead
            self._send_group(group, room, text, exclude)
            floor = Position(epoch, offset)
        return floor, False

    def _notice(self, group: _CatchUp, room: str, read: HistoryRead[Any]) -> None:
        extra: dict[str, Any] = {"replay": read.owed}
        if read.reason:
            extra["reason"] = read.reason
        self._send_group(
            group, room, control(read.kind, room, read.epoch, read.start, **extra), None
        )

    async def _read_or_say(
        self,
        endpoint: str,
        room: str,
        config: RoomHistory | None,
        since: Position | None,
        replay: int,
    ) -> HistoryRead[Any]:
        """A page of the history, or (when it cannot be read) a ``not_recovered`` with reason
        ``unavailable`` that keeps the position asked for, so the client can try again."""
        try:
            if config is None:
                raise HistoryUnavailable(f"room {room!r} of {endpoint} has no history")
            return await self._read(endpoint, room, config, since, replay)
        except HistoryUnavailable as exc:
            logger.warning("could not read the history of room %r of %s: %s", room, endpoint, exc)
        except Exception:
            logger.exception("could not read the history of room %r of %s", room, endpoint)
        known = since or self._marks.get((endpoint, room))
        if known is None:
            return HistoryRead("not_recovered", "", 0, [], "unavailable")
        return HistoryRead("not_recovered", known.epoch, known.offset, [], "unavailable")

    async def _send_paced(self, group: _CatchUp, room: str, text: str, exclude: str | None) -> None:
        """Send to the one member of ``group``, waiting while its socket is behind."""
        for cid in list(group.conns):
            channel = self.registry.channel(cid)
            if channel is None or not self.registry.is_held(cid, room) or not channel.open:
                group.conns.discard(cid)
            elif cid != exclude:
                try:
                    await channel.send_text(text)
                except Exception:  # it closed meanwhile
                    group.conns.discard(cid)

    async def _read(
        self,
        endpoint: str,
        room: str,
        config: RoomHistory,
        since: Position | None,
        replay: int,
    ) -> HistoryRead[Any]:
        if self.broker is None:
            return self._memory.read(room_key(endpoint, room), config, since, replay, READ_PAGE)
        return await self.broker.read_history(
            room_key(endpoint, room), config, since, replay, READ_PAGE
        )

    def check_outgoing(self, endpoint: str, data: str | bytes) -> None:
        """Raise ValueError when ``data`` would pass for one of roost's own messages on
        ``endpoint`` (a JSON object with the key "roost" where clients read those)."""
        if endpoint in self.reserved and type(data) is str and _forged(data):
            raise ValueError(
                f'on {endpoint}, a message may not be a JSON object with the key "roost": '
                "it is reserved for roost's own messages (room history, presence events)"
            )

    async def send_to(self, conn_id: str, data: str | bytes) -> bool:
        """Deliver to one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            self.check_outgoing(self.registry.endpoint_of(conn_id) or "", data)
            return self.registry.send_to(conn_id, data)
        if self.broker is None:
            return False
        if isinstance(data, str):
            self._publish(messages.SendTo(id=conn_id, text=data))
        else:
            self._publish(messages.SendTo(id=conn_id, binary=bytes(data)))
        return await self._known(conn_id)

    async def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            return self.registry.disconnect(conn_id, code, reason)
        if self.broker is None:
            return False
        self._publish(messages.Disconnect(id=conn_id, code=code, reason=reason))
        return await self._known(conn_id)

    async def join(self, conn_id: str, room: str, meta: Any = None, replay: int = 0) -> None:
        """Put a connection in a room, with ``meta`` (any JSON value, at most 4 KiB: it is
        what ``presence`` reports). In a room with history, the connection first gets what it
        missed since the position its client asked for (or else the last ``replay``
        messages), then live messages; this returns once that replay is queued. Joining a
        room again only changes the metadata."""
        _check_room(room)
        if meta is not None:
            meta = _check_meta(meta)
        if type(replay) is not int:
            raise TypeError(f"replay must be an int, not {type(replay).__name__}")
        if replay < 0:
            raise ValueError(f"replay must be >= 0, not {replay!r}")
        if conn_id not in self.registry:
            self._publish(messages.Join(id=conn_id, room=room, meta=meta, replay=replay))
            return
        catch_up = self._join_local(conn_id, room, meta, replay)
        if catch_up is not None:
            await catch_up

    def _join_local(self, conn_id: str, room: str, meta: Any, replay: int) -> Any:
        """Join a local connection; the catch-up to await when the room has history."""
        registry = self.registry
        endpoint = registry.endpoint_of(conn_id) or ""
        config = self.history_of(endpoint, room)
        new = registry.join(conn_id, room, meta, held=config is not None)
        self._presence_changed(conn_id)
        if not new:
            return None
        if endpoint in self.presence_events:
            event = orjson.dumps({"roost": "join", "room": room, "id": conn_id, "meta": meta})
            self._announce_room(endpoint, room, event.decode(), conn_id)
        if config is None:
            return None
        key = (endpoint, room)
        group = _CatchUp({conn_id}, CATCH_UP_HOLDS)
        self._catching.setdefault(key, []).append(group)
        # The position the client asked for serves the first join of the room only.
        since = self._resume.get(conn_id, {}).pop(room, None)
        return self._catch_up(endpoint, room, group, since, replay, config=config)

    async def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of a room."""
        _check_room(room)
        if conn_id in self.registry:
            endpoint = self.registry.endpoint_of(conn_id) or ""
            if self.registry.leave(conn_id, room):
                self._presence_changed(conn_id)
                self._left(endpoint, room, conn_id)
        else:
            self._publish(messages.Leave(id=conn_id, room=room))

    def _left(self, endpoint: str, room: str, conn_id: str) -> None:
        """A local connection left a room (or closed)."""
        key = (endpoint, room)
        groups = self._catching.get(key)
        if groups is not None:
            for group in list(groups):
                group.conns.discard(conn_id)
                if not group.conns and group.buffer is None:  # done reading: nobody to wait for
                    self._release(key, group)
        if not self.registry.has_room(endpoint, room) and key not in self._catching:
            self._marks.pop(key, None)
        if endpoint in self.presence_events:
            event = orjson.dumps({"roost": "leave", "room": room, "id": conn_id})
            self._announce_room(endpoint, room, event.decode(), conn_id)

    # -- presence ----------------------------------------------------------------------------

    async def _known(self, conn_id: str) -> bool:
        """Whether a connection not in this process is on another node: one index lookup
        (replicated presence) or one O(1) broker query, whatever the number of connections."""
        broker = self.broker
        if broker is None:
            return False
        if broker.replicated_presence:
            return conn_id in self._remote
        node = await broker.presence_node(conn_id)
        return node is not None and node != self.node_id

    async def connections(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of open connections across the deployment (presence), optionally of one
        endpoint and room."""
        ids = self.registry.members(endpoint, room)
        broker = self.broker
        if broker is None:
            return ids
        if broker.replicated_presence:
            ids.extend(self._remote.members(endpoint, room))
            return ids
        registry = self.registry
        for cid, (ep, rooms, _) in (await broker.presence_all()).items():
            if cid in registry:
                continue
            if (endpoint is None or ep == endpoint) and (room is None or room in rooms):
                ids.append(cid)
        return ids

    async def presence(self, endpoint: str, room: str) -> dict[str, Any]:
        """The members of ``room`` of ``endpoint`` across the deployment: connection id ->
        the metadata it joined with (None when none)."""
        _check_room(room)
        registry = self.registry
        found = {cid: registry.meta_of(cid, room) for cid in registry.members(endpoint, room)}
        broker = self.broker
        if broker is None:
            return found
        if broker.replicated_presence:
            remote = self._remote
            for cid in remote.members(endpoint, room):
                found[cid] = remote.meta_of(cid, room)
            return found
        for cid, (ep, rooms, meta) in (await broker.presence_all()).items():
            if ep == endpoint and room in rooms and cid not in registry:
                found[cid] = meta.get(room)
        return found

    # -- messages from other nodes -----------------------------------------------------------

    def _deliver(self, raw: bytes) -> None:
        try:
            message = self._codec.decode(raw)
        except Undecodable as exc:
            if exc.node != self.node_id:  # brokers may echo a node's own messages
                self._undecodable(exc)
            return
        if message.n == self.node_id:
            return
        try:
            self._apply(message)
        except Exception:
            logger.exception("could not apply a %s message from node %s", type(message), message.n)

    def _state_from(self, node: str) -> None:
        self._states.add(node)
        self._states_changed.set()

    def _undecodable(self, exc: Undecodable) -> None:
        """Log once per sending node and reason: a node of another version keeps talking."""
        key = (exc.node, exc.reason)
        if key in self._unreadable:
            return
        if len(self._unreadable) < 1024:
            self._unreadable.add(key)
        if exc.version is not None:
            logger.warning(
                "ignoring messages from node %s: it speaks hub envelope version %d, this node "
                "speaks %d (a rolling upgrade in progress?)",
                exc.node or "?",
                exc.version,
                messages.VERSION,
            )
        else:
            logger.warning("ignoring a hub message from node %s: %s", exc.node or "?", exc.reason)

    def _apply(self, message: messages.Message) -> None:
        registry = self.registry
        node = message.n
        match message:
            case messages.Broadcast():
                data = _payload(message.text, message.binary)
                if data is not None:
                    registry.broadcast(
                        message.endpoint,
                        data,
                        room=message.room,
                        exclude=message.exclude,
                        held=message.control,
                    )
            case messages.SendTo():
                data = _payload(message.text, message.binary)
                endpoint = registry.endpoint_of(message.id) or ""
                if data is not None and not (
                    endpoint in self.reserved and type(data) is str and _forged(data)
                ):
                    registry.send_to(message.id, data)
                elif data is not None:
                    logger.warning(
                        "not sending a message to %s on %s: it looks like one of roost's own",
                        message.id,
                        endpoint,
                    )
            case messages.Disconnect():
                registry.disconnect(message.id, message.code, message.reason)
            case messages.Join() if message.id in registry:
                catch_up = self._join_local(message.id, message.room, message.meta, message.replay)
                if catch_up is not None:
                    self._spawn(catch_up)
            case messages.Leave() if message.id in registry:
                endpoint = registry.endpoint_of(message.id) or ""
                if registry.leave(message.id, message.room):
                    self._presence_changed(message.id)
                    self._left(endpoint, message.room, message.id)
            case messages.Presence():
                entry = None if message.endpoint is None else (message.endpoint, message.rooms)
                self._remote.update(node, message.id, entry, message.meta)
            case messages.Hello():
                self._state_from(node)
                self._remote.replace(node, dict(message.connections), message.meta)
                if self.broker is not None and self.broker.replicated_presence:
                    self._send_state(node)
            case messages.State() if message.to in (self.node_id, ""):
                self._state_from(node)
                if message.part == 0:
                    self._remote.replace(node, dict(message.connections), message.meta)
                else:  # more of the same node's state: add it
                    for cid, entry in message.connections.items():
                        self._remote.update(node, cid, entry, message.meta.get(cid))
            case messages.Gone():
                for cid, endpoint, rooms in self._remote.forget(node):
                    if endpoint in self.presence_events:
                        for room in rooms:  # tell this node's members of its rooms
                            event = orjson.dumps({"roost": "leave", "room": room, "id": cid})
                            registry.broadcast(endpoint, event.decode(), room=room, held=True)


def _payload(text: str | None, binary: bytes | None) -> str | bytes | None:
    return text if text is not None else binary


def _check_meta(meta: Any) -> Any:
    """``meta`` as plain JSON values (subclasses of str, int, dict... made plain, as every
    node will see it); raises TypeError or ValueError unless it is a JSON value of at most
    MAX_META bytes."""
    try:
        raw = orjson.dumps(meta)
    except TypeError as exc:
        raise TypeError(f"room metadata must be a JSON value: {exc}") from None
    if len(raw) > MAX_META:
        raise ValueError(f"room metadata is {len(raw)} bytes as JSON; at most {MAX_META}")
    return orjson.loads(raw)


def _forged(text: str) -> bool:
    """Whether ``text`` is a JSON object with the key "roost" (however the key is escaped)."""
    head = text.lstrip()
    if not head.startswith("{") or ("roost" not in head and "\\" not in head):
        return False
    try:
        value = orjson.loads(head)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and "roost" in value


def _check_room(room: object) -> None:
    if type(room) is not str:
        raise TypeError(f"a room is named by a str, not {type(room).__name__}")
