"""The chat demo: rooms, presence, history and a status feed, on roost alone."""
