"""Rooms with history in Redis: the key names, the two Lua scripts that sequence and read a
room's history, and the framing of sequenced messages on pub/sub. ``roost.hub.redis`` runs
them; ``roost.hub.history`` defines what they mean (``MemoryHistory`` is the reference).

Each room with history has two keys, ``<prefix>:history:{<room>}:meta`` and
``<prefix>:history:{<room>}:log`` (``<room>`` is the hub's ``room_key``; the braces are a
Redis Cluster hash tag, so both keys of a room live in one slot):

- ``meta``, a hash: ``epoch`` (the history's name, drawn by the roost server that created it),
  ``last`` (the last offset handed out) and ``expired`` (the newest offset dropped for its age);
- ``log``, a stream: one entry per kept message, with id ``<offset>-0`` and the fields ``t``
  (when it was sequenced, in ms of Redis's clock) and ``b`` (the hub message, as encoded).

Both expire after the room's ``ttl`` without a message or a join, as the history does in
memory. Messages older than ``ttl`` are dropped as the room is used; the stream keeps the last
``size`` (exact ``MAXLEN``).

A sequenced message goes out on the pub/sub channel ``<channel>:seq`` as
``<epoch>:<offset>:<body>``: the epoch (hex digits, no colon), the offset in decimal, then the
body's bytes as they are. The sequencing script publishes it itself, so the order on the
channel is the order of the offsets.
"""

from __future__ import annotations

import hashlib
from typing import Any

from roost.hub.history import HistoryRead

__all__ = ["READ", "SEQUENCE", "frame_of", "history_keys", "read_of", "sha", "unframe"]

# Shared by both scripts. KEYS: meta, log. ARGV[1]: an epoch for a new history, ARGV[2]: size,
# ARGV[3]: ttl in ms. Leaves epoch, last, expired, now (ms) and head (the oldest entry, as
# XRANGE gives it: {} when none) set, after dropping the entries older than ttl.
_PRELUDE = """
local meta, log = KEYS[1], KEYS[2]
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function offset_of(id) return tonumber(string.match(id, '^%d+')) end
local function int(n) return string.format('%d', n) end
local state = redis.call('HMGET', meta, 'epoch', 'last', 'expired')
local epoch, last, expired = state[1], tonumber(state[2]) or 0, tonumber(state[3]) or 0
if not epoch or (last > 0 and redis.call('EXISTS', log) == 0) then
  -- No history, or its messages are gone (evicted): a new one, under a new epoch.
  epoch, last, expired = ARGV[1], 0, 0
  redis.call('DEL', log)
  redis.call('HSET', meta, 'epoch', epoch, 'last', 0, 'expired', 0)
end
local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
if #head > 0 and tonumber(head[1][2][2]) + ttl < now then
  local dropped = 0
  while true do
    local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 100)
    local n = 0
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][2]) + ttl >= now then break end
      n = n + 1
      dropped = offset_of(entry[1])
    end
    if n == 0 then break end
    redis.call('XTRIM', log, 'MINID', int(dropped + 1))
    if n < #batch then break end
  end
  expired = dropped
  redis.call('HSET', meta, 'expired', int(expired))
  head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
end
"""

#: Give ARGV[5] (a body) the room's next offset, keep it, publish it on ARGV[4] and return
#: {epoch, offset}. The offset is counted before the entry is added, so a failure in between
#: skips an offset rather than reusing one.
SEQUENCE = (
    _PRELUDE
    + """
local offset = redis.call('HINCRBY', meta, 'last', 1)
redis.call('XADD', log, 'MAXLEN', size, int(offset) .. '-0', 't', int(now), 'b', ARGV[5])
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', log, ttl)
redis.call('PUBLISH', ARGV[4], epoch .. ':' .. int(offset) .. ':' .. ARGV[5])
return {epoch, offset}
"""
)

#: What a connection joining the room gets (``MemoryHistory.read``). ARGV[4]: the epoch of
#: the position asked for ("" for none), ARGV[5]: its offset, ARGV[6]: how many of the last
#: entries to send otherwise, ARGV[7]: at most how many entries to return, the oldest (0: all).
#: Returns {kind, epoch, start, reason, offset, body, ...}.
READ = (
    _PRELUDE
    + """
redis.call('XTRIM', log, 'MAXLEN', size)
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', log, ttl)
head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
local first = last + 1
if #head > 0 then first = offset_of(head[1][1]) end
local asked, since, replay = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local limit = tonumber(ARGV[7] or '0')
local reason = ''
if asked ~= '' then
  if asked ~= epoch then
    reason = 'epoch'
  elseif since > last then
    reason = 'ahead'
  elseif since + 1 < first then
    if expired > since then reason = 'expired' else reason = 'trimmed' end
  end
  if reason == '' then
    local out = {'recovered', epoch, since, '', last - since}
    if since < last then
      local found
      if limit > 0 then
        found = redis.call('XRANGE', log, int(since + 1), '+', 'COUNT', limit)
      else
        found = redis.call('XRANGE', log, int(since + 1), '+')
      end
      for _, entry in ipairs(found) do
        out[#out + 1] = offset_of(entry[1])
        out[#out + 1] = entry[2][4]
      end
    end
    return out
  end
end
local tail = {}
if replay > 0 then tail = redis.call('XREVRANGE', log, '+', '-', 'COUNT', replay) end
local start = last
if #tail > 0 then start = offset_of(tail[#tail][1]) - 1 end
local kind = 'joined'
if asked ~= '' then kind = 'not_recovered' end
local out = {kind, epoch, start, reason, #tail}
local stop = 1
if limit > 0 and #tail > limit then stop = #tail - limit + 1 end
for i = #tail, stop, -1 do
  out[#out + 1] = offset_of(tail[i][1])
  out[#out + 1] = tail[i][2][4]
end
return out
"""
)


def sha(script: str) -> str:
    """The SHA1 Redis names ``script`` by (for EVALSHA)."""
    return hashlib.sha1(script.encode()).hexdigest()


def history_keys(prefix: str, key: str) -> list[str]:
    """The meta hash and the stream of room ``key``: distinct for distinct keys whatever
    they contain, and in one Redis Cluster slot."""
    base = f"{prefix}:history:{{{key}}}"
    return [f"{base}:meta", f"{base}:log"]


def frame_of(epoch: str, offset: int, body: bytes) -> bytes:
    """A sequenced message as the script publishes it (for tests and tools)."""
    return b"%s:%d:%s" % (epoch.encode(), offset, body)


def unframe(data: bytes) -> tuple[str, int, bytes] | None:
    """(epoch, offset, body) of a sequenced message, or None when ``data`` is not one."""
    epoch, _, rest = data.partition(b":")
    offset, sep, body = rest.partition(b":")
    if not sep or not epoch or not offset.isdigit() or len(offset) > 19:
        return None
    try:
        return epoch.decode("ascii"), int(offset), body
    except UnicodeDecodeError:
        return None


def read_of(reply: Any) -> HistoryRead[bytes]:
    """The READ script's reply as a HistoryRead."""
    kind, epoch, start, reason, total, *flat = reply
    entries = [(int(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
    return HistoryRead(_text(kind), _text(epoch), int(start), entries, _text(reason), int(total))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
