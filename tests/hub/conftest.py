"""Fixtures for the hub's tests: ``redis_server`` (a real redis-server on a free port) comes
from tests/conftest.py."""
