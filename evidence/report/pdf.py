"""Printing the report to PDF with a headless Chromium that is already installed (never downloaded).

The page is written to a private temporary folder and printed with Chromium's own `--print-to-pdf`, in a
throw-away profile, with its background networking off; the page fetches nothing, so no request leaves the
machine. The PDF is printed beside the target and renamed into place, so a failure leaves no file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from evidence.errors import ExportError

CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PRINT_TIMEOUT_S = 120.0
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: `sudo apt install chromium`; macOS: `brew install --cask chromium`) "
    "or pass --chromium PATH"
)


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium to print with: `explicit` (a path or a command name), else the first on the PATH."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise ExportError(f"cannot print the PDF: no Chromium at {explicit!r}; {INSTALL_HINT}")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ExportError(f"cannot print the PDF: Chromium was not found on the PATH; {INSTALL_HINT}")


def chromium_command(browser: str, page: Path, pdf: Path, profile: Path) -> list[str]:
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pdf-header-footer",
        f"--user-data-dir={profile}",
        f"--print-to-pdf={pdf}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return [*command, page.as_uri()]


def print_pdf(page_html: str, target: Path, browser: str) -> int:
    if target.is_dir():
        raise ExportError(f"cannot write {target}: it is a folder")
    if not target.parent.is_dir():
        raise ExportError(f"cannot write {target}: folder {target.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="evidence-report-") as work:
        page = Path(work) / "report.html"
        page.write_text(page_html, encoding="utf-8")
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".pdf", dir=target.parent)
        except OSError as exc:
            raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
        os.close(fd)
        partial = Path(name)
        try:
            try:
                done = subprocess.run(
                    chromium_command(browser, page, partial, Path(work) / "profile"),
                    capture_output=True,
                    text=True,
                    timeout=PRINT_TIMEOUT_S,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise ExportError(
                    f"Chromium ({browser}) did not print the report within {PRINT_TIMEOUT_S:.0f} s"
                ) from None
            except OSError as exc:
                raise ExportError(f"cannot run Chromium ({browser}): {exc.strerror or exc}") from exc
            size = partial.stat().st_size
            if done.returncode != 0 or size == 0:
                detail = next((ln for ln in done.stderr.splitlines() if "ERROR" in ln), "")
                raise ExportError(
                    f"Chromium ({browser}) could not print the report (exit {done.returncode})"
                    + (f": {detail[:200]}" if detail else "")
                )
            partial.chmod(0o666 & ~_umask())
            partial.replace(target)
            return size
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
