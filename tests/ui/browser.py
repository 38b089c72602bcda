"""Playwright for Python driving Debian's chromium (no `playwright install`: the system browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = (
    os.environ.get("RETAINWISE_TEST_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def browser() -> Iterator:
    """A headless chromium; each test opens its own contexts (one per signed-in person)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def headless_page(width: int = 1280, height: int = 900) -> Iterator:
    """One page in a fresh context, for tests that need a single visitor."""
    with browser() as launched:
        context = launched.new_context(viewport={"width": width, "height": height})
        try:
            yield context.new_page()
        finally:
            context.close()
