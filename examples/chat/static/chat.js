// roost chat demo: plain JavaScript, no build step. User content is only ever set with
// textContent, never as HTML. The messages (JSON, selected by "type") are declared in app.py:
// the page sends "say"; the server sends "presence" once joined, "said" for each message of
// the room and "error". The connection is roost's browser client (/roost/client.js), which
// reconnects and resumes the room by itself: room messages come once each, in order.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const STATES = {
    connecting: "connecting…",
    open: "",
    recovering: "reconnected: catching up…",
    not_recovered: "reconnected: some messages were missed",
  };
  let socket = null;
  let members = new Map(); // connection id -> name, for this connection's room
  let gone = new Set(); // ids that left: a late snapshot must not bring them back
  let status = null;
  let state = "";

  function addMessage(msg) {
    const li = document.createElement("li");
    li.className = "message";
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = msg.sender;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = msg.text;
    li.append(who, text);
    $("messages").append(li);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  function addNote(text) {
    const li = document.createElement("li");
    li.className = "note";
    li.textContent = text;
    $("messages").append(li);
  }

  function showMembers() {
    const names = [...members.values()].sort();
    $("members").replaceChildren(...names.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    }));
  }

  function watchStatus(room) {
    if (status) status.close();
    status = new EventSource("/status?" + new URLSearchParams(room ? { room } : {}));
    status.addEventListener("status", (event) => {
      const s = JSON.parse(event.data);
      const rooms = Object.entries(s.rooms).map(([r, n]) => `${r}: ${n}`).join(", ");
      $("status").textContent = `${s.connections} connected` + (rooms ? ` (${rooms})` : "");
    });
  }

  const handlers = {
    // A room message: a "said", from the room's history or live.
    onMessage(data, info) {
      const msg = JSON.parse(data);
      if (msg.type === "said") addMessage(msg);
      else if (msg.type === "presence") {
        // Who was in the room when this connection joined; join and leave events that
        // arrived first are kept.
        msg.members.forEach((m) => { if (!gone.has(m.id)) members.set(m.id, m.name); });
        showMembers();
      } else if (msg.type === "error") $("error").textContent = msg.message;
    },
    // roost's own: members joining and leaving, and where the room's history resumed.
    onEvent(event) {
      if (event.roost === "join") members.set(event.id, event.meta.name);
      else if (event.roost === "leave") { members.delete(event.id); gone.add(event.id); }
      else if (event.roost === "not_recovered" && $("messages").children.length) {
        addNote("(some messages were missed)");
      }
      showMembers();
    },
    onState(now, detail) {
      if (state === "connecting" && (now === "open" || now === "recovering")) {
        // A new connection: who is here now comes with it.
        members = new Map();
        gone = new Set();
        showMembers();
      }
      state = now;
      if (now === "closed") {
        $("connection").textContent = detail.code === 1000 ? "" : `disconnected (${detail.code})`;
      } else {
        $("connection").textContent = STATES[now];
      }
    },
  };

  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket) socket.close();
    const name = $("name").value.trim();
    const room = $("room").value.trim();
    $("messages").replaceChildren();
    $("error").textContent = "";
    members = new Map();
    gone = new Set();
    showMembers();
    socket = new RoostSocket("/chat?" + new URLSearchParams({ name, room }), handlers);
    $("room-name").textContent = room;
    $("chat").hidden = false;
    $("text").focus();
    watchStatus(room);
  });

  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (socket && text.trim() && socket.send(JSON.stringify({ type: "say", text }))) {
      $("error").textContent = "";
      $("text").value = "";
    }
  });

  watchStatus("");
})();
