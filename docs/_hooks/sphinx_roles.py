"""MkDocs hook: the package's docstrings name code with Sphinx roles (:class:`Genome`,
:meth:`~SearchSpace.dump`), which mkdocstrings renders as the role's text followed by the code.
The API pages show the name alone, as code, the way Sphinx does (``~`` keeps the last part)."""

from __future__ import annotations

import re

#: a role as rendered: ``:class:<code>~a.b.C</code>``
ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|obj|exc|const):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    name = match.group(2)
    return f"<code>{name.rsplit('.', 1)[-1] if match.group(1) else name}</code>"


def on_page_content(html, page, config, files):
    """Drop the role from every rendered role in the page."""
    return ROLE.sub(_code, html)
