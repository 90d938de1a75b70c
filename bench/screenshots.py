"""The README's screenshots: the two explorers as Voila serves them (``make explore``), and
the first screen of a run's report.html.

Copies notebooks 00 and 90 into a temporary folder with their parameters set to ``--manifest``
(default: the built-in 233-patient synthetic cohort) and ``--run`` (default: the newest run under
reports/), serves them with Voila on a free local port, renders each in headless Chromium
(Debian's ``chromium`` through Playwright's ``executable_path``: no browser download), waits
for the widgets and photographs the explorer (the notebook's output, not its Markdown). Each
PNG loses its empty margins, is cut to ``--height`` pixels at ``--width`` and scaled down
further while it is over ``--max-kb`` (no palette: the contour colours stay exact); the paths
and sizes are printed.

The report is opened from its file (``--report``, default: ``--run``'s report.html) and
photographed from its top: the title, the synthetic caveat and the paper beside the run.

    python bench/screenshots.py [--run reports/explore_smoke] [--manifest PATH] [--out docs/img]
        [--report reports/<run>/report.html] [--only explorers|report]

Writes ``explore-cohort.png``, ``explore-run.png`` and ``report.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
from bench_explore import add_sources, sources  # bench/ is on sys.path when run as a script
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def served(folder: Path, timeout: float = 60) -> Iterator[str]:
    """Voila serving ``folder`` on a free port of 127.0.0.1: its base URL. Stopped with SIGINT
    on exit (Voila then shuts its kernels down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    voila = subprocess.Popen([sys.executable, "-m", "voila", str(folder), "--no-browser",
                              f"--port={port}", "--Voila.ip=127.0.0.1"],
                             cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(int(timeout / 0.25)):
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if voila.poll() is not None:
                    raise SystemExit(f"voila exited with status {voila.returncode}") from None
                time.sleep(0.25)
        else:
            raise SystemExit(f"voila did not answer on {url} within {timeout:.0f} s")
        yield url
    finally:
        voila.send_signal(signal.SIGINT)
        try:
            voila.wait(timeout=20)
        except subprocess.TimeoutExpired:
            voila.kill()


def notebook(name: str, folder: Path, **parameters: object) -> None:
    """``notebooks/<name>`` copied into ``folder`` with its parameters cell set."""
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    nbformat.write(nb, folder / name)


def shrink(png: bytes, width: int, height: int, max_kb: int) -> tuple[Image.Image, bytes]:
    """The screenshot without its empty right and bottom margins, cut to ``height`` at
    ``width`` pixels and scaled down further until its PNG is under ``max_kb`` (no palette:
    the contour colours stay exact); the image and its PNG."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    blank = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, blank).getbbox() or (0, 0, *image.size)
    image = image.crop((0, 0, min(image.width, box[2] + 8), min(image.height, box[3] + 8)))
    scale = min(1.0, width / image.width)
    image = image.crop((0, 0, image.width, min(image.height, round(height / scale))))
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        shown = image if scale == 1 else image.resize(size, Image.LANCZOS)
        buffer = io.BytesIO()
        shown.save(buffer, "PNG", optimize=True)
        if buffer.tell() <= max_kb * 1024 or scale < 0.3:
            return shown, buffer.getvalue()
        scale *= 0.9


def photograph(browser, url: str, ready: str, out: Path, args: argparse.Namespace) -> None:
    page = browser.new_page(viewport={"width": args.viewport, "height": 2400})
    page.route("https://**", lambda route: route.fulfill(status=200, body=""))  # offline
    page.goto(url, timeout=120_000)
    page.wait_for_selector(ready, timeout=120_000)
    page.wait_for_load_state("networkidle")
    time.sleep(1.0)  # the last images decoded and laid out
    output = page.locator(".jp-OutputArea-output").filter(has=page.locator(".jupyter-widgets"))
    image, data = shrink(output.first.screenshot(), args.width, args.height, args.max_kb)
    out.write_bytes(data)
    print(f"{out}: {image.width} x {image.height} px, {out.stat().st_size / 1024:.0f} KB")
    page.close()


def photograph_report(browser, report: Path, out: Path, args: argparse.Namespace) -> None:
    """The top of ``report`` (an exported report.html) as a PNG at ``out``."""
    page = browser.new_page(viewport={"width": args.viewport, "height": 2400})
    page.route("https://**", lambda route: route.fulfill(status=200, body=""))  # offline
    page.goto(report.resolve().as_uri(), timeout=120_000)
    page.wait_for_load_state("load")
    time.sleep(1.0)
    image, data = shrink(page.screenshot(), args.width, args.height, args.max_kb)
    out.write_bytes(data)
    print(f"{out}: {image.width} x {image.height} px, {out.stat().st_size / 1024:.0f} KB")
    page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sources(parser)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--viewport", type=int, default=1280, help="browser width (px)")
    parser.add_argument("--width", type=int, default=1100, help="PNG width (px)")
    parser.add_argument("--height", type=int, default=1100, help="PNG height at most (px)")
    parser.add_argument("--max-kb", type=int, default=300)
    parser.add_argument("--report", type=Path, default=None,
                        help="report.html to photograph (default: the run's)")
    parser.add_argument("--only", choices=("explorers", "report"), default=None)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    manifest, run = sources(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "explorers":
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            photograph_report(browser, args.report or Path(run) / "report.html",
                              args.out / "report.png", args)
            browser.close()
    if args.only == "report":
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        notebook("00-explore-cohort.ipynb", folder, cohort_manifest=str(manifest),
                 synth_patients=233, synth_seed=0, series=["t1", "ce_t1", "t2"],
                 labels_from="", classes="paper")
        notebook("90-explore-run.ipynb", folder, run_dir=str(run), malignant_threshold=2)
        with served(folder) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            photograph(browser, f"{url}/voila/render/00-explore-cohort.ipynb",
                       "img.widget-image[src^='blob:']", args.out / "explore-cohort.png", args)
            photograph(browser, f"{url}/voila/render/90-explore-run.ipynb",
                       "img.widget-image[src^='blob:']", args.out / "explore-run.png", args)
            browser.close()


if __name__ == "__main__":
    main()
