"""Runnable roost examples: the guide's examples and the chat demo."""
