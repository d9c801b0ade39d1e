"""Jinja2 environments for what people read: autoescaped, and translated through the catalogs
of ``core.i18n`` in the language of the work in hand."""

from __future__ import annotations

import jinja2

from bastion.core.i18n import format_moment, gettext, ngettext


def environment(package: str) -> jinja2.Environment:
    """The templates in ``package``'s ``templates`` folder; ``_()`` and ``ngettext()`` translate
    (new-style: ``_("%(name)s", name=value)`` escapes ``value``), ``moment`` formats a date."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=gettext, ngettext=ngettext, newstyle=True
    )
    env.filters["moment"] = format_moment
    return env
