/* roost's browser client: one WebSocket that reconnects by itself and resumes every room it
 * was in from the last position it saw, so that a page gets each room message once and in
 * order, or is told when some were lost. Served by every roost app at /roost/client.js;
 * load it with a plain <script> tag, no build step. docs/client.md describes it.
 *
 *   const sock = new RoostSocket("/chat?room=lobby", {
 *     onMessage(data, info) {},  // info: {room, epoch, offset} for a room message, else null
 *     onEvent(event) {},         // roost's own: notices and presence events (objects)
 *     onState(state, detail) {}, // "connecting", "open", "recovering", "not_recovered", "closed"
 *   });
 *   sock.send(text); sock.close();
 */
(function (global) {
  "use strict";

  const RESUME_PARAM = "roost_resume";
  const MAX_RESUME_ROOMS = 128; // the most roost accepts in one roost_resume
  const MAX_RESUME_CHARS = 6000; // keeps the handshake's URL well under roost's header limit
  const ROOST_PREFIX = '{"roost":'; // how every message from roost itself begins
  const NOTICES = new Set(["joined", "recovered", "not_recovered"]);
  // Close codes after which the client stays closed: the server ended the session on purpose
  // (1000), refused what this client sends and would refuse it again (1002, 1003, 1007, 1008,
  // 1009, 1010), or the app said so with a code of its own (4000-4999). After any other code,
  // and after a connection lost without a close frame (1006), it reconnects.
  const FINAL_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);
  // roost closes a client that reads too slowly with 1008 and this reason: resuming is what
  // gets it the messages it missed, so that one 1008 is not final.
  const SLOW_CONSUMER = "slow consumer";

  const DEFAULTS = {
    protocols: undefined, // WebSocket subprotocols to offer
    retryDelay: 1000, // ms: the first retry waits a random time up to this...
    maxRetryDelay: 30000, // ms: ...doubling with each failed attempt, up to this
    maxRetries: Infinity, // failed attempts in a row before giving up ("closed")
    stableAfter: 5000, // ms a connection must stay open for the delays to start over
    resumeTimeout: 10000, // ms to wait for the notices of the rooms being resumed
    isFinal: isFinal,
    onMessage: function () {},
    onEvent: function () {},
    onState: function () {},
  };

  function isFinal(code, reason) {
    if (code === 1008 && String(reason || "").startsWith(SLOW_CONSUMER)) return false;
    return FINAL_CODES.has(code) || (code >= 4000 && code <= 4999);
  }

  // Exponential backoff with full jitter: a random delay up to base * 2^attempt, capped.
  function retryDelay(attempt, base, max) {
    return Math.random() * Math.min(max, base * Math.pow(2, attempt));
  }

  function socketUrl(url) {
    const u = new URL(url, global.location ? global.location.href : undefined);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    return u;
  }

  function decodeBase64(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  // Call a page's callback; an error in it is reported (asynchronously, to the console) but
  // never breaks the client.
  function call(fn, args) {
    try {
      fn.apply(null, args);
    } catch (err) {
      setTimeout(function () { throw err; });
    }
  }

  class RoostSocket {
    constructor(url, options) {
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.url = socketUrl(url);
      this.url.searchParams.delete(RESUME_PARAM);
      this.state = "connecting";
      this.positions = new Map(); // room -> [epoch, offset], the room used last at the end
      this.dropped = 0; // envelopes dropped as already seen
      this._ws = null;
      this._timer = null;
      this._attempt = 0; // failed attempts in a row
      this._openedAt = 0;
      this._awaiting = new Set(); // rooms being resumed whose notice has not come
      this._closed = false;
      this._connect();
      // Reported once the constructor has returned, so the page's callback can use the object.
      queueMicrotask(() => {
        if (this.state !== "connecting") return; // closed meanwhile
        call(this.options.onState, ["connecting", { attempt: 0, delay: 0 }]);
      });
    }

    /** Send a text (or binary) message; false when not connected (nothing is queued). */
    send(data) {
      const ws = this._ws;
      if (ws === null || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(data);
      return true;
    }

    /** Close for good: no more reconnecting. */
    close(code, reason) {
      if (this._closed) return;
      this._closed = true;
      clearTimeout(this._timer);
      const ws = this._ws;
      this._ws = null;
      if (ws !== null) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        ws.close(code === undefined ? 1000 : code, reason || "");
      }
      this._setState("closed", { code: code === undefined ? 1000 : code, reason: reason || "" });
    }

    // -- the connection ---------------------------------------------------------------------

    _resumeValue() {
      const rooms = [...this.positions].filter(function (entry) { return entry[1][0] !== ""; });
      const value = {};
      let size = 2;
      for (let i = rooms.length - 1; i >= 0 && rooms.length - i <= MAX_RESUME_ROOMS; i--) {
        const [room, position] = rooms[i];
        size += JSON.stringify(room).length + JSON.stringify(position).length + 2;
        if (size > MAX_RESUME_CHARS) break; // the rooms used longest ago are left out
        value[room] = position;
      }
      return value;
    }

    _connect() {
      const url = new URL(this.url);
      const resume = this._resumeValue();
      const rooms = Object.keys(resume);
      if (rooms.length) url.searchParams.set(RESUME_PARAM, JSON.stringify(resume));
      let ws;
      try {
        ws = new WebSocket(url, this.options.protocols);
      } catch (err) {
        // A URL the browser refuses (a bad scheme, a blocked port) will never work.
        this._closed = true;
        this._setState("closed", { code: 1006, reason: String(err) });
        return;
      }
      ws.binaryType = "arraybuffer";
      this._ws = ws;
      ws.onopen = () => {
        this._openedAt = Date.now();
        this._awaiting = new Set(rooms);
        if (rooms.length) {
          this._setState("recovering", { rooms: rooms });
          this._timer = setTimeout(() => this._recovered(), this.options.resumeTimeout);
        } else {
          this._setState("open", {});
        }
      };
      ws.onmessage = (event) => this._receive(event.data);
      ws.onclose = (event) => this._dropped(event.code, event.reason);
    }

    _dropped(code, reason) {
      this._ws = null;
      clearTimeout(this._timer);
      if (this._closed) return;
      const options = this.options;
      if (options.isFinal(code, reason)) {
        this._closed = true;
        this._setState("closed", { code: code, reason: reason });
        return;
      }
      if (this._openedAt && Date.now() - this._openedAt >= options.stableAfter) this._attempt = 0;
      this._openedAt = 0;
      if (this._attempt >= options.maxRetries) {
        this._closed = true;
        this._setState("closed", { code: code, reason: reason, gaveUp: true });
        return;
      }
      const delay = retryDelay(this._attempt, options.retryDelay, options.maxRetryDelay);
      this._attempt += 1;
      const detail = { attempt: this._attempt, delay: delay, code: code, reason: reason };
      this._setState("connecting", detail);
      this._timer = setTimeout(() => this._connect(), delay);
    }

    _setState(state, detail) {
      this.state = state;
      call(this.options.onState, [state, detail]);
    }

    // -- messages ---------------------------------------------------------------------------

    _receive(data) {
      if (typeof data !== "string" || !data.startsWith(ROOST_PREFIX)) {
        call(this.options.onMessage, [data, null]); // sent to this connection, or bare
        return;
      }
      let message;
      try {
        message = JSON.parse(data);
      } catch (err) {
        call(this.options.onMessage, [data, null]);
        return;
      }
      const kind = message.roost;
      if (kind === "message") this._roomMessage(message);
      else if (NOTICES.has(kind)) this._notice(message);
      else call(this.options.onEvent, [message]); // presence events, and anything newer
    }

    _roomMessage(message) {
      const room = message.room;
      const known = this.positions.get(room);
      if (known !== undefined && known[0] === message.epoch && message.offset <= known[1]) {
        this.dropped += 1; // seen already
        return;
      }
      this._keep(room, message.epoch, message.offset);
      const data = message.data !== undefined ? message.data : decodeBase64(message.data_b64);
      const info = { room: room, epoch: message.epoch, offset: message.offset };
      call(this.options.onMessage, [data, info]);
    }

    _notice(notice) {
      const room = notice.room;
      // What follows the notice starts after its position (an empty epoch: none is known).
      if (notice.epoch) this._keep(room, notice.epoch, notice.offset);
      else this.positions.delete(room);
      call(this.options.onEvent, [notice]);
      if (notice.roost === "not_recovered") {
        this._setState("not_recovered", { room: room, reason: notice.reason });
      }
      if (this._awaiting.delete(room) && this._awaiting.size === 0) this._recovered();
    }

    _keep(room, epoch, offset) {
      this.positions.delete(room); // re-added last: the rooms used longest ago come first
      this.positions.set(room, [epoch, offset]);
    }

    // Every room being resumed has answered (or the wait is over).
    _recovered() {
      clearTimeout(this._timer);
      this._awaiting.clear();
      if (this.state === "recovering") this._setState("open", {}); // else it is not_recovered
    }
  }

  RoostSocket.isFinal = isFinal;
  RoostSocket.retryDelay = retryDelay;
  RoostSocket.RESUME_PARAM = RESUME_PARAM;
  global.RoostSocket = RoostSocket;
})(typeof window !== "undefined" ? window : this);
