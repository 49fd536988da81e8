"""Who is connected and where: the registry of connections, rooms, and delivery to them."""

from roost.hub.registry import Registry

__all__ = ["Registry"]
