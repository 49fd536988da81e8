"""Other frameworks' import paths on top of roost, for apps that opt in: ``roost.compat.robyn``
(and ``roost.compat.robyn_shim``, which lets ``import robyn`` reach it). Nothing in roost
imports this package: an app that does not use it pays nothing for it.
"""
