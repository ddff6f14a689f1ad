"""A real browser for the report tests: Debian's Chromium driven by Playwright (its own browser builds are
never downloaded). Without Chromium or Playwright the browser tests skip, except under CI=true, where
that is a failure: `.ci/run` installs Chromium, so a missing install step cannot hide."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evidence.report.pdf import CHROMIUM_NAMES


def chromium_path() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"the browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        missing("Chromium is not installed (Debian: apt install chromium)")
    assert path is not None
    return path


def launch_args() -> list[str]:
    return ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


@dataclass
class PageVisit:
    """What a page did while it was open: console messages, errors, every request it made."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@dataclass
class Browser:
    browser: Any

    def visit(self, path: Path) -> Iterator[PageVisit]:
        context = self.browser.new_context(viewport={"width": 1100, "height": 1400})
        page = context.new_page()
        visit = PageVisit(page)
        page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: visit.page_errors.append(str(e)))
        page.on("request", lambda r: visit.requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        try:
            yield visit
        finally:
            context.close()


def start_browser() -> Iterator[Browser]:
    executable = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=launch_args())
        try:
            yield Browser(browser)
        finally:
            browser.close()
