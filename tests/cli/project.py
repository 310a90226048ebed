"""A copy of the project to run the CLI in, the CLI as a subprocess, and a built report opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.http_server import serve
from tests.paths import REPO

LSTMKIT = [sys.executable, "-m", "lstmkit.cli"]


def lstmkit(cwd: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the lstmkit CLI in a project folder (`env`: variables laid over this process's environment)."""
    proc = subprocess.run([*LSTMKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env=None if env is None else os.environ | env)
    if check and proc.returncode != 0:
        raise AssertionError(f"lstmkit {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(root: Path) -> Path:
    """Copy the project's notebooks, profiles and book configuration into root."""
    for name in ("notebooks", "configs"):
        shutil.copytree(REPO / name, root / name)
    for name in ("_config.yml", "_toc.yml", "docs/favicon.svg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    return root


def _browser() -> str | None:
    """Path of a Chromium the browser test can drive, or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def render_in_browser(html: Path, pages: list[str]) -> None:
    """Open each page of a built report in headless Chromium: no errors, every image rendered, a title, a figure."""
    browser = _browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if browser is None or sync_playwright is None:
        reason = "no Chromium at /usr/bin/chromium" if browser is None else "playwright is not installed"
        if os.environ.get("LSTMKIT_REQUIRE_BROWSER"):
            pytest.fail(f"browser test required but {reason}")
        pytest.skip(f"{reason}: install Debian's chromium and `pip install playwright` to run the browser test")

    with serve(html) as base, sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        for path in pages:
            page = chrome.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}"))
            page.on("console", lambda m, errors=errors: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r, errors=errors: errors.append(f"failed request: {r.url}") if r.url.startswith(base) else None)
            response = page.goto(f"{base}/{path}", wait_until="load")
            assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
            broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            assert not broken, f"{path}: images not rendered: {broken}"
            assert page.locator("h1").count() >= 1, f"{path}: no title"
            assert page.locator(".output.traceback, .output.error, .output.stderr").count() == 0, f"{path}: error output"
            assert not errors, f"{path}: {errors}"
            if path.startswith("book/0"):
                assert page.evaluate("() => document.images.length") >= 1, f"{path}: no figure"
            page.close()
        page = chrome.new_page()  # the site's entry point redirects to the first page
        page.goto(f"{base}/index.html")
        page.wait_for_url(re.compile(r".*/book/intro\.html$"))
        assert "lstmkit forecasting report" in page.title()
        chrome.close()
