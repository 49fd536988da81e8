"""roost.protocol.events: messages are plain str/bytes, control events frozen dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from roost.protocol.events import Closed, Ping, Pong


def test_control_events_compare_by_value() -> None:
    assert Ping(b"x") == Ping(b"x") != Pong(b"x")
    assert Closed(1000, "bye") == Closed(1000, "bye") != Closed(1001, "bye")


@pytest.mark.parametrize("event", [Ping(b"a"), Pong(b"a"), Closed(1000, "")])
def test_control_events_are_frozen_and_slotted(event: object) -> None:
    field = dataclasses.fields(event)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, None)
    assert not hasattr(event, "__dict__")
