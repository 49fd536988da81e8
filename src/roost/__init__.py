"""roost: a fast async Python web framework for real-time apps."""

from roost.protocol.errors import WebSocketDisconnect

__all__ = ["WebSocketDisconnect"]
__version__ = "0.1.0"
