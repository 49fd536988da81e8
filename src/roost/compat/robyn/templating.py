"""Robyn's ``robyn.templating``: roost's Jinja2 templates (needs ``roost[templating]``)."""

from roost.templating import JinjaTemplate, TemplateInterface, render

__all__ = ["JinjaTemplate", "TemplateInterface", "render"]
