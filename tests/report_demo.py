"""`make report-demo`: the seed library's report as a reviewer looks at it.

Writes, into the folder given (default build/report-demo): report.html and report.pdf (made by
`evidence report`), report.png (the top of the page as headless Chromium shows it, 1000 px wide) and
report-page-1.png (the PDF's first page through pdftoppm). `--readme-image FILE` also writes a small copy of
the screenshot for the README.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from tests.browser import chromium_path, launch_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("folder", nargs="?", type=Path, default=Path("build/report-demo"))
    parser.add_argument("--readme-image", type=Path, default=None)
    args = parser.parse_args(argv)
    folder: Path = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    evidence = str(Path(sys.executable).with_name("evidence"))
    html, pdf = folder / "report.html", folder / "report.pdf"
    subprocess.run([evidence, "report", "-o", str(html)], check=True)
    subprocess.run([evidence, "report", "--pdf", "-o", str(pdf)], check=True)
    browser = chromium_path()
    if browser is None:
        print("Chromium is not installed (Debian: apt install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    shot = folder / "report.png"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=launch_args())
        page = chromium.new_page(viewport={"width": 1000, "height": 1500})
        page.goto(html.resolve().as_uri())
        page.screenshot(path=str(shot))
        chromium.close()
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(folder / "report-page-1")], check=True)  # fmt: skip
    if args.readme_image:
        from PIL import Image

        with Image.open(shot) as image:
            small = image.convert("RGB").resize((700, 1050), Image.Resampling.LANCZOS)
            # 256 colours, no dithering: the stance colours stay as they are, the file a fifth the size.
            small = small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            small.save(args.readme_image, optimize=True)
        print(f"wrote {args.readme_image} ({args.readme_image.stat().st_size:,} bytes)", file=sys.stderr)
    print(f"wrote {html}, {pdf}, {shot} and {folder / 'report-page-1.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
