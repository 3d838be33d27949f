"""The run explorer in a real browser: headless Chromium driven by Playwright (never downloading a
browser: it drives the system's ``chromium``, installed with apt-get when absent).

The test skips only when Chromium or Playwright cannot be installed, and fails instead under CI=true.
Its screenshot of the sinusoid reference run is the picture in ``docs/explorer.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.inspect import Inspector, record_run
from graphflow.learners import Protocol
from graphflow.viz.explorer import explorer_data, write_explorer

DOCS = Path(__file__).resolve().parents[2] / "docs"
BROWSERS = ("chromium", "chromium-browser")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _install_chromium() -> str | None:
    """apt-get install chromium (as root); None when that is impossible here."""
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=900, env=env)
        except (subprocess.SubprocessError, OSError):
            return None
    return _find_chromium()


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        try:
            subprocess.run([sys.executable, "-m", "pip", "install", "playwright>=1.40"], check=True,
                           capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError):
            return None
        from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    executable = _find_chromium() or _install_chromium()
    if executable is None:
        _unavailable("Chromium is not installed and could not be installed (apt-get install chromium)")
    sync_playwright = _playwright()
    if sync_playwright is None:
        _unavailable("the playwright package is not installed and could not be installed (pip install playwright)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page of the explorer that remembers console errors and every request it made."""

    def __init__(self, browser, path: Path, width: int = 1500, height: int = 1000):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())

    def set_step(self, k: int) -> None:
        self.page.fill("#step", str(k))
        self.page.dispatch_event("#step", "input")

    def close(self) -> None:
        self.page.close()


def _fill(page, selector: str) -> str:
    return page.get_attribute(selector, "fill")


def test_explorer_of_a_small_graph_per_node(browser, tmp_path):
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8))))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (3, 1, 5, 1)).astype(np.float32)
    _, run = record_run(engine, engine.init_network(rng, init_std=0.5), xs, np.sin(xs), "dense2/*,relu1/act[1]",
                        gradients=True)
    page = Page(browser, write_explorer(run, tmp_path / "small.html"))
    try:
        p = page.page
        assert p.title().startswith("graphflow run")
        assert p.locator("g.box").count() == len(explorer_data(run)["boxes"]) == graph.stats()["total_nodes"]
        p.click('g.box[data-id="dense2/w[2,0]"]')
        assert p.inner_text("#node-title") == "dense2/w[2,0]"
        assert p.locator("#details .chart svg path").count() >= 4  # update, -gradient, norms, channels
        cursor = p.locator("#details .chart .cursor").first
        x0 = cursor.get_attribute("x1")
        before = _fill(p, 'g.box[data-id="dense2/w[2,0]"] circle')
        page.set_step(2)
        assert p.inner_text("#step-label") == "step 2"
        assert p.locator("#details .chart .cursor").first.get_attribute("x1") != x0
        assert _fill(p, 'g.box[data-id="dense2/w[2,0]"] circle') != before
        p.click('g.box[data-id="relu1/act[1]"]')
        assert p.inner_text("#node-title") == "relu1/act[1]" and "activation node" in p.inner_text("#details")
        p.select_option("#quantity", "message_out")
        p.click('g.box[data-id="dense0/w[0,1]"]', force=True)  # not recorded: nothing happens
        assert p.inner_text("#node-title") == "relu1/act[1]"
        assert page.errors == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
    finally:
        page.close()


def test_explorer_of_the_sinusoid_reference_run(browser, reference_dir, tmp_path):
    """The collapsed graph of the reference sinusoid run: expand a layer, pick a weight, move the slider;
    the screenshot is docs/explorer.png."""
    from graphflow.interop.mplp import load_checkpoint
    from graphflow.interop.traces import initial_params, read_cases, replay_case

    graph, protocol = load_checkpoint("sinusoid", reference_dir / "sinusoid_weights_00035869.npy")
    case = read_cases(reference_dir / "sinusoid_5x10_trace.npz")["case0"]
    inspector = Inspector(Engine(graph, protocol), "dense2/*,dense4/*,relu3/act[*]", gradients=True,
                          meta={"title": "sinusoid reference checkpoint, trace case0"})
    replay_case(inspector, case, initial_params(graph, case, None, "case0"))
    path = write_explorer(inspector.to_run(), tmp_path / "sinusoid.html")
    html = path.read_text()
    assert "<script src" not in html and "<link" not in html and "https://" not in html
    page = Page(browser, path, 1500, 1050)
    try:
        p = page.page
        assert "collapsed to block parts" in p.inner_text("#graph-title")
        assert p.locator("g.box").count() == len(graph.parts())
        p.click('g.box[data-id="dense2/w"]')
        card = p.locator('[id="card-dense2/w"]')
        assert card.count() == 1 and card.locator("rect.cell").count() == 400
        p.click('rect.cell[data-id="dense2/w[7,3]"]')
        assert p.inner_text("#node-title") == "dense2/w[7,3]"
        assert p.locator("#details .chart").count() >= 4
        p.select_option("#quantity", "update")
        page.set_step(3)
        assert p.inner_text("#step-label") == "step 3"
        assert "at step 3" in p.inner_text("#details")
        assert page.errors == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
        DOCS.mkdir(exist_ok=True)
        p.screenshot(path=str(DOCS / "explorer.png"), full_page=True)
    finally:
        page.close()
