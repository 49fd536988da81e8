"""Robyn's ``robyn.jsonify``."""

from roost.responses import jsonify

__all__ = ["jsonify"]
