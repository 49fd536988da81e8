// roost chat demo: plain JavaScript, no build step. User content is only ever set with
// textContent, never as HTML. The messages (JSON, selected by "type") are declared in app.py:
// the page sends "say"; the server sends "history", "said", "presence" and "error".
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let socket = null;

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

  function showMembers(members) {
    $("members").replaceChildren(...members.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    }));
  }

  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket) socket.close();
    const name = $("name").value.trim();
    const room = $("room").value.trim();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ name, room });
    socket = new WebSocket(`${scheme}://${location.host}/chat?${query}`);
    $("messages").replaceChildren();
    $("error").textContent = "";
    socket.addEventListener("open", () => {
      $("room-name").textContent = room;
      $("chat").hidden = false;
      $("text").focus();
    });
    socket.addEventListener("message", (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "history") msg.messages.forEach(addMessage);
      else if (msg.type === "said") addMessage(msg);
      else if (msg.type === "presence") showMembers(msg.members);
      else if (msg.type === "error") $("error").textContent = msg.message;
    });
    socket.addEventListener("close", (event) => {
      if (event.code !== 1000) $("error").textContent = `disconnected (${event.code})`;
    });
  });

  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (socket && socket.readyState === WebSocket.OPEN && text.trim()) {
      $("error").textContent = "";
      socket.send(JSON.stringify({ type: "say", text }));
      $("text").value = "";
    }
  });

  const status = new EventSource("/status");
  status.addEventListener("status", (event) => {
    const s = JSON.parse(event.data);
    const rooms = Object.entries(s.rooms).map(([r, n]) => `${r}: ${n}`).join(", ");
    $("status").textContent = `${s.connections} connected` + (rooms ? ` (${rooms})` : "");
  });
})();
