"""Sans-I/O core: HTTP/1.1 parsing, the WebSocket handshake, RFC 6455 frames, RFC 7692 deflate.

Nothing here imports asyncio, socket or time: the server, the test client and the compliance
runner all drive the same objects with bytes.
"""
