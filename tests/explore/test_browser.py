"""The explorers in a real browser: Voila serves notebooks 00 and 90 on the tiny fixtures, headless
Chromium (Debian's ``chromium``, driven by the ``playwright`` package through its executable
path: no browser download) renders them, moves the sliders and presses "next", and the page must
show a new image and new tables, with no error in the browser console; the NiiVue volume view
must draw (WebGL, SwiftShader in headless Chromium) without fetching anything from outside.

Skips with its reason without chromium or playwright (``.ci/run`` installs chromium). Voila is
stopped with SIGINT at the end (it shuts its kernels down); kernels still alive then are killed.
Runtime: about 20 s after the fixtures (27 s with them) on the 2-core machine (kernel start,
imports and first render about 4 s per notebook).
"""

from __future__ import annotations

import html
import importlib.util
import io
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import psutil
import pytest
from PIL import Image

from parotidlib.explore.run_app import THRESHOLDS, frame_html
from parotidlib.explore.runs import Missing, RunData

CHROMIUM = shutil.which("chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install "
                                                "chromium); .ci/run installs it"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright not installed (pip install "
                                                       "playwright; no browser download needed)"),
]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: Voila up and answering (a cold start imports jupyter_server and the templates).
SERVER_TIMEOUT_S = 60
#: A notebook rendered: kernel start, ``import parotidlib``, the explorer's first draw.
RENDER_TIMEOUT_S = 60
#: One interaction answered (a kernel round trip and a redraw).
CHANGE_TIMEOUT_S = 20
#: The only requests that may leave the machine: the stylesheets Voila's lab template links
#: from a CDN (the icons themselves come with Voila's bundle). Served empty here: offline.
ALLOWED_EXTERNAL = re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/")

IMAGE_SHA256 = """async (img) => {
    const data = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", data);
    return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_parameters(name: str, folder: Path, source: str) -> None:
    """Copy notebook ``name`` into ``folder`` with its parameters cell replaced by ``source``."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: expected one cell tagged 'parameters'"
    cells[0].source = source
    nbformat.write(nb, folder / name)


def _threshold_move(run: Path) -> tuple[str, int, int]:
    """A split and two thresholds at which Table 5 differs on this run (the tiny run's 1-epoch
    model says malignant on most slices, so only some splits and thresholds tell apart)."""
    data = RunData(run)
    low, high = THRESHOLDS
    for split in data.split_names():
        tables = [frame_html(data.table5(t, split)) for t in (low, high)]
        if not isinstance(data.table5(low, split), Missing) and tables[0] != tables[1]:
            return split, low, high
    pytest.fail(f"Table 5 of {run} is the same at thresholds {low} and {high} in every split: "
                f"the fixture's predictions do not depend on the threshold")


def _cell_texts(table_html: str) -> list[str]:
    """The text of each th/td of an HTML table, as the browser's innerText gives it."""
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", table_html, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]


def _blank(png: bytes) -> bool:
    """Whether a screenshot holds at most two colours (a background, a crosshair)."""
    return Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=2) is not None


def _wait_change(read, old, what: str, timeout: float = CHANGE_TIMEOUT_S):
    """Poll ``read()`` until it differs from ``old``; the new value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = read()
        if new != old:
            return new
        time.sleep(0.1)
    raise AssertionError(f"{what} did not change within {timeout} s")


@pytest.fixture(scope="module")
def voila(tmp_path_factory, tiny_cohort, tiny_run):
    """Voila serving the two explorers on the fixtures: (base url, Table 5's split, start
    threshold, target threshold)."""
    folder = tmp_path_factory.mktemp("voila")
    split, start, target = _threshold_move(tiny_run)
    _with_parameters("00-explore-cohort.ipynb", folder,
                     f"cohort_manifest = {str(tiny_cohort)!r}\nsynth_patients = 6\nsynth_seed = 3\n"
                     f"series = ['t1', 'ce_t1', 't2']\nlabels_from = ''\nclasses = 'paper'")
    _with_parameters("90-explore-run.ipynb", folder,
                     f"run_dir = {str(tiny_run)!r}\nmalignant_threshold = {start}")
    port = _free_port()
    log = (folder / "voila.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", str(folder), f"--port={port}", "--no-browser",
         "--Voila.ip=127.0.0.1", "--Voila.port_retries=0"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"voila exited ({process.returncode}): "
                            f"{(folder / 'voila.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(base, timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"voila did not answer on {base} within {SERVER_TIMEOUT_S} s")
                time.sleep(0.2)
        yield base, split, start, target
    finally:
        kernels = [] if process.poll() is not None else \
            psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)  # Voila shuts its kernels down on SIGINT
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for child in kernels:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage",
                                           "--enable-unsafe-swiftshader"])  # WebGL
        yield chromium
        chromium.close()


def _open(browser, url: str):
    """A page on ``url`` that records console errors, page errors and requests that would leave
    the machine (answered empty: this runs offline)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    external: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text} ({m.location})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def offline(route):
        external.append(route.request.url)
        route.fulfill(status=200, body="", content_type="text/css")

    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), offline)
    page.set_default_timeout(CHANGE_TIMEOUT_S * 1000)
    page.goto(url, timeout=RENDER_TIMEOUT_S * 1000)
    return page, errors, external


def _check_console(errors: list[str], external: list[str]) -> None:
    assert not errors, "errors in the browser console:\n" + "\n".join(errors)
    leaving = [u for u in external if not ALLOWED_EXTERNAL.match(u)]
    assert not leaving, f"the page fetches from outside the machine: {leaving}"


def _slider_handle(page, label: str):
    return (page.locator(".widget-slider:visible")
            .filter(has=page.locator("label.widget-label", has_text=label))
            .locator(".noUi-handle"))


def test_cohort_explorer_in_browser(voila, browser):
    base, *_ = voila
    page, errors, external = _open(browser, f"{base}/voila/render/00-explore-cohort.ipynb")
    t1_image = page.locator("img.widget-image").first  # the panels in order T1, CE-T1, T2
    t1_title = page.locator(".widget-html").filter(has_text=re.compile(r"^\s*T1 "))
    table = page.locator(".widget-html").filter(has=page.locator("table.parotid-table"))
    patient = page.locator(".widget-dropdown").filter(
        has=page.locator("label", has_text="patient")).locator("select")
    t1_image.wait_for(timeout=RENDER_TIMEOUT_S * 1000)
    page.wait_for_function("document.querySelector('img.widget-image').src.startsWith('blob:')",
                           timeout=RENDER_TIMEOUT_S * 1000)
    assert patient.input_value() == "SYN0001"
    src, title = t1_image.get_attribute("src"), t1_title.inner_text()
    digest, rows = t1_image.evaluate(IMAGE_SHA256), table.inner_html()
    assert "slice" in title, title

    # the z slider, from the keyboard on its handle: five steps (2.5 slices) up
    handle = _slider_handle(page, "z (mm)")
    handle.focus()
    handle.press("PageUp")
    src = _wait_change(lambda: t1_image.get_attribute("src"), src, "the T1 image (z slider)")
    new_title = _wait_change(t1_title.inner_text, title, "the T1 caption (z slider)")
    assert re.search(r"slice \d+/\d+|outside the series", new_title), new_title
    new_digest = t1_image.evaluate(IMAGE_SHA256)
    assert new_digest != digest, "the T1 image's bytes are the same after the z slider moved"
    assert table.inner_html() == rows, "the patient table changed with the slice"

    # the next patient
    page.get_by_role("button", name="next").click()
    _wait_change(patient.input_value, "SYN0001", "the patient (next)")
    _wait_change(table.inner_html, rows, "the patient table (next)")
    _wait_change(lambda: t1_image.get_attribute("src"), src, "the T1 image (next)")
    assert t1_image.evaluate(IMAGE_SHA256) not in (digest, new_digest)
    highlighted = table.locator("tr[style*='background']")
    assert highlighted.count() == 1 and patient.input_value() in highlighted.inner_text()

    # the volume view: NiiVue draws the series offline (its JavaScript ships with ipyniivue)
    page.get_by_role("button", name="volume view").click()
    if importlib.util.find_spec("ipyniivue") is None:
        page.get_by_text("ipyniivue is not installed").wait_for()
    else:
        canvas = page.locator("canvas").first
        canvas.wait_for(timeout=RENDER_TIMEOUT_S * 1000)
        _wait_change(lambda: _blank(canvas.screenshot()), True, "the NiiVue canvas (blank)")
    _check_console(errors, external)
    page.close()


def test_run_explorer_in_browser(voila, browser, tiny_run):
    base, split, start, target = voila
    page, errors, external = _open(browser, f"{base}/voila/render/90-explore-run.ipynb")

    def after(heading: str):
        return (page.locator(".widget-html").filter(has_text=re.compile(rf"^\s*{heading}\s*$"))
                .locator("xpath=following-sibling::*[1]"))

    table5, patients = after("Table 5"), after("Patients at this threshold")
    decision = page.locator(".widget-html").filter(has_text="Figure 5's rule")
    table5.locator("table").wait_for(timeout=RENDER_TIMEOUT_S * 1000)
    handle = _slider_handle(page, "malignant if more than")
    assert handle.get_attribute("aria-valuenow").startswith(str(start))
    split_select = page.locator(".widget-dropdown:visible").filter(
        has=page.locator("label", has_text="split")).locator("select")
    if split_select.input_value() != split:
        before = table5.inner_html()
        split_select.select_option(split)
        _wait_change(table5.inner_html, before, f"Table 5 (split {split})")
    data = RunData(tiny_run)
    assert table5.locator("th, td").all_inner_texts() == \
        _cell_texts(frame_html(data.table5(start, split)))
    old5, old_patients, old_decision = (table5.inner_html(), patients.inner_html(),
                                        decision.inner_text())

    # the threshold slider, from the keyboard on its handle: to its maximum
    handle.focus()
    handle.press("End")
    _wait_change(table5.inner_html, old5, "Table 5 (threshold slider)")
    _wait_change(patients.inner_html, old_patients, "the patient table (threshold slider)")
    new_decision = _wait_change(decision.inner_text, old_decision, "the decision (threshold)")
    assert f"more than {target} slices" in new_decision, new_decision
    assert handle.get_attribute("aria-valuenow").startswith(str(target))
    # what the browser shows is parotidlib.evaluation's Table 5 at the new threshold
    assert table5.locator("th, td").all_inner_texts() == \
        _cell_texts(frame_html(data.table5(target, split)))
    _check_console(errors, external)
    page.close()
