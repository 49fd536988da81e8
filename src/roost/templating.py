"""Templates: ``JinjaTemplate(directory).render_template(name, **context)`` and
``render(name, **context)`` answer with the rendered HTML.

Needs Jinja2 (``pip install 'roost[templating]'``); importing this module without it raises
ImportError saying so. Autoescaping is on for ``.html``, ``.htm`` and ``.xml`` templates and for
templates rendered from strings.
"""

from __future__ import annotations

import functools
import inspect
import os
from abc import ABC, abstractmethod
from typing import Any

try:
    import jinja2
except ImportError as exc:  # pragma: no cover - the dev environment has Jinja2
    raise ImportError("roost.templating needs Jinja2: pip install 'roost[templating]'") from exc

from roost.responses import Response

__all__ = ["JinjaTemplate", "TemplateInterface", "render"]

HTML = "text/html; charset=utf-8"


class TemplateInterface(ABC):
    """A template engine: ``render_template(name, **context)`` returns a Response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    @abstractmethod
    def render_template(self, *args: Any, **kwargs: Any) -> Response:
        """The rendered template as a Response."""


class JinjaTemplate(TemplateInterface):
    """Jinja2 templates from ``directory`` (read with ``encoding``; symlinks followed only with
    ``followlinks``). A template name that leaves the directory raises
    ``jinja2.TemplateNotFound``."""

    def __init__(
        self, directory: str | os.PathLike[str], encoding: str = "utf-8", followlinks: bool = False
    ) -> None:
        super().__init__()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(
                searchpath=directory, encoding=encoding, followlinks=followlinks
            ),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xml"), default=True
            ),
        )

    def render_template(self, template_name: str, **kwargs: Any) -> Response:
        """``template_name`` rendered with ``kwargs``: a 200 text/html response."""
        text = self.env.get_template(template_name).render(**kwargs)
        return Response(200, {"content-type": HTML}, text)


@functools.lru_cache(maxsize=64)
def _engine(engine: type[TemplateInterface], directory: str) -> TemplateInterface:
    return engine(directory)


def render(
    template_name: str,
    *,
    templates_dir: str = "templates",
    template_engine: type[TemplateInterface] = JinjaTemplate,
    **kwargs: Any,
) -> Response:
    """Render ``template_name`` from ``templates_dir`` (relative to the calling module's file,
    ``templates`` by default) with ``template_engine`` (Jinja2), one engine kept per
    directory."""
    if not os.path.isabs(templates_dir):
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        caller_file = caller.f_globals.get("__file__") if caller is not None else None
        del frame, caller
        base = os.path.dirname(os.path.abspath(caller_file)) if caller_file else os.getcwd()
        templates_dir = os.path.join(base, templates_dir)
    return _engine(template_engine, templates_dir).render_template(template_name, **kwargs)
