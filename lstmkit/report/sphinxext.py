"""Sphinx extension for the report: small fixes to the HTML that Jupyter Book 1.x produces."""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated inline scripts (sphinx-thebe registers its config script twice, a JavaScript error)."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict:
    """Register the fixes with Sphinx."""
    app.connect("html-page-context", _dedupe_scripts, priority=999)  # after every other handler
    return {"parallel_read_safe": True, "parallel_write_safe": True}
