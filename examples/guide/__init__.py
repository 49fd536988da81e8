"""Every example of the WebSocket guide, runnable: ``python -m examples.guide.<name>``."""
