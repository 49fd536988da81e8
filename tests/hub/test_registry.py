"""Registry (local connections) and RemotePresence (other nodes' connections, replicated)."""

from __future__ import annotations

from roost.hub.registry import Registry, RemotePresence
from tests.hub.fakes import FakeChannel


def test_registry_members_by_endpoint_and_room() -> None:
    registry = Registry()
    a, b = FakeChannel(), FakeChannel()
    registry.add("a", "/chat", a)  # type: ignore[arg-type]
    registry.add("b", "/news", b)  # type: ignore[arg-type]
    registry.join("a", "red")
    assert sorted(registry.members()) == ["a", "b"]
    assert registry.members("/chat", "red") == ["a"]
    assert registry.members(room="red") == ["a"]
    assert registry.send_to("a", "hi") is True
    assert registry.send_to("nobody", "hi") is False
    assert a.sent == ["hi"] and b.sent == []
    registry.remove("a")
    assert registry.members(room="red") == [] and registry.rooms_of("a") == frozenset()


def test_remote_presence_finds_a_connections_node() -> None:
    remote = RemotePresence()
    remote.update("n1", "a", ("/chat", ["red"]))
    remote.update("n2", "b", ("/chat", []))
    assert remote.node_of("a") == "n1" and remote.node_of("b") == "n2"
    assert remote.node_of("nobody") is None
    assert "a" in remote and "nobody" not in remote and len(remote) == 2
    remote.update("n1", "a", None)
    assert "a" not in remote and remote.node_of("a") is None


def test_remote_presence_ignores_a_removal_from_another_node() -> None:
    remote = RemotePresence()
    remote.update("n1", "a", ("/chat", []))
    remote.update("n2", "a", None)  # n2 never had it
    assert remote.node_of("a") == "n1"
    remote.update("n2", "a", ("/chat", ["red"]))  # a newer report moves it
    assert remote.node_of("a") == "n2"
    remote.forget("n1")
    assert remote.node_of("a") == "n2"
    assert remote.members("/chat", "red") == ["a"]


def test_remote_presence_replace_and_forget_touch_one_node_only() -> None:
    remote = RemotePresence()
    remote.update("n1", "a", ("/chat", []))
    remote.update("n1", "b", ("/chat", []))
    remote.update("n2", "c", ("/news", ["red"]))
    remote.replace("n1", {"b": ("/chat", ["red"]), "d": ("/news", [])})
    assert sorted(remote.members()) == ["b", "c", "d"]
    assert remote.node_of("a") is None and remote.node_of("d") == "n1"
    assert sorted(remote.members(room="red")) == ["b", "c"]
    assert remote.members("/chat") == ["b"]
    remote.forget("n1")
    assert remote.members() == ["c"]
    assert remote.members("/chat") == [] and remote.members("/news", "red") == ["c"]
    remote.forget("n2")
    remote.forget("never seen")
    assert len(remote) == 0 and remote.members("/news") == []


def test_remote_presence_keeps_its_own_copy_of_rooms() -> None:
    rooms = ["red"]
    remote = RemotePresence()
    remote.update("n1", "a", ("/chat", rooms))
    rooms.append("blue")
    assert remote.members(room="blue") == []
