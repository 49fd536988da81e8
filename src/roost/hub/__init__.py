"""Who is connected and where: the registry of connections, rooms, and delivery to them."""

from roost.hub.hub import Hub
from roost.hub.registry import Registry

__all__ = ["Hub", "Registry"]
