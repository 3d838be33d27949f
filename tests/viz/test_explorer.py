"""The run explorer in a real browser: headless Chromium driven by Playwright (never downloading a
browser: it drives the system's ``chromium``, installed with apt-get when absent).

The test skips only when Chromium or Playwright cannot be installed, and fails instead under CI=true.
Its screenshot of the sinusoid reference run is the picture in ``docs/explorer.png``: the tests write
it under their temporary folder only; ``GRAPHFLOW_UPDATE_DOCS=1`` also copies it to ``docs/``
(``GRAPHFLOW_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/viz/test_explorer.py``), so that running
the tests never changes a tracked file.

Titles (a run's ``meta.title``, an experiment's name) are the user's text: the page shows any of
them exactly, as text, and none can end the page's script elements or run code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.learners import Protocol
from graphflow.recording import Inspector, record_run
from graphflow.viz.explorer import explorer_data, explorer_html, write_explorer

DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE_DOCS = os.environ.get("GRAPHFLOW_UPDATE_DOCS") == "1"
"""Copy the screenshot to docs/explorer.png (else it stays in the test's temporary folder)."""
HOSTILE_TITLES = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<!--<script>",
    "/*{{script}}*/",
    "{{data}}",
    "</script><script>alert(1)</script>",
    "run\u2028two lines",
    "'; alert(1); '",
    "${alert(1)}",
    "\\u003c/script\\u003e",
]
"""Run titles and experiment names that once broke the page (or could): markup, script ends, comment
openers, the template's own placeholders, a JavaScript line separator, quotes, template literals and
the escaped form of ``</script>`` as literal text."""
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
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(path.resolve().as_uri())

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

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
    the screenshot is docs/explorer.png (copied there with GRAPHFLOW_UPDATE_DOCS=1)."""
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
        screenshot = tmp_path / "explorer.png"
        p.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.read_bytes()[:4] == b"\x89PNG"
        if UPDATE_DOCS:
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(screenshot, DOCS / "explorer.png")
    finally:
        page.close()


# ---------------------------------------------------------------------- user text in the page
TINY_EXPERIMENT = {
    "graph": {"kind": "stack", "inputs": 1, "layers": [
        {"kind": "dense", "units": 3}, {"kind": "activation", "fn": "relu"},
        {"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}]},
    "learner": {"message_size": 2, "hidden": 2, "mlp_hidden": [8, 8]},
    "meta": {"steps": 1, "outer_batch": 2, "inner_steps": 2, "shots": 4, "init_pool": 4, "normalization_rounds": 1},
    "eval_tasks": 2,
}


@pytest.fixture(scope="module")
def small_run():
    """2 recorded steps of a 1-3-1 network: the last layer, per node."""
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8))))
    xs = np.random.default_rng(0).uniform(-2, 2, (2, 1, 4, 1)).astype(np.float32)
    _, run = record_run(engine, engine.init_network(np.random.default_rng(1)), xs, np.sin(xs), "dense2/*")
    return run


def _titled(run, title: str):
    run.header["meta"] = dict(run.header.get("meta", {}), title=title)
    return run


class _Structure(HTMLParser):
    """The page as a browser's tokenizer sees it: the title text, and the text of every script element."""

    def __init__(self):
        super().__init__()
        self.title, self.scripts, self._in = "", [], None

    def handle_starttag(self, tag, attrs):
        if tag in ("title", "script"):
            self._in = tag
            if tag == "script":
                self.scripts.append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "script":
            self.scripts[-1] += data


@pytest.mark.parametrize("title", ["a plain run", *HOSTILE_TITLES], ids=range(1 + len(HOSTILE_TITLES)))
def test_the_page_holds_the_payload_in_one_script_element(small_run, title):
    """Any title: the page has its two script elements (the data, the code), the data is the whole
    payload as JSON, the title is text, and no placeholder of the template survives."""
    html = explorer_html(_titled(small_run, title))
    page = _Structure()
    page.feed(html)
    page.close()
    assert page.title == title
    data = [s for s in page.scripts if s.startswith("{")]
    assert len(page.scripts) == 2 and len(data) == 1
    assert json.loads(data[0]) == json.loads(json.dumps(explorer_data(small_run)))
    assert not any(bad in data[0] for bad in ("<", ">", "&", "\u2028", "\u2029"))
    assert "{{" not in html.replace(data[0], "").replace(escape(title), "")
    assert html.count("<script") == 2 and html.count("</script") == 2


def _assert_renders(browser, path: Path, title: str, boxes: int | None = None) -> None:
    """The page drew its graph (``boxes`` boxes, default: as many as its data has), shows ``title``
    exactly (document title and heading), opened no dialog and raised no error."""
    page = Page(browser, path)
    try:
        p = page.page
        drawn = p.evaluate("JSON.parse(document.getElementById('run-data').textContent).boxes.length")
        assert drawn > 0 and p.locator("#graph g.box").count() == (boxes or drawn)
        assert p.title() == title
        assert p.evaluate("document.getElementById('title').textContent") == title
        assert page.dialogs == [] and page.errors == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
    finally:
        page.close()


@pytest.mark.parametrize("title", HOSTILE_TITLES, ids=range(len(HOSTILE_TITLES)))
def test_explore_shows_any_run_title_as_text(browser, small_run, title, tmp_path):
    """``graphflow explore`` of a run file whose ``meta.title`` is hostile text."""
    from graphflow.cli import main

    run_file, page = _titled(small_run, title).save(tmp_path / "run.npz"), tmp_path / "run.html"
    assert main(["explore", str(run_file), "--out", str(page)]) == 0
    _assert_renders(browser, page, title, small_run.graph.stats()["total_nodes"])


@pytest.mark.parametrize("name", HOSTILE_TITLES, ids=range(len(HOSTILE_TITLES)))
def test_explore_shows_any_experiment_name_as_text(browser, name, tmp_path):
    """An experiment's name reaches the page through its checkpoint: ``graphflow explore CHECKPOINT``
    records a run titled by the name, the checkpoint and the seed. A name the experiment spec refuses
    (names are folder names: no ``/`` or ``\\``) is tried with those replaced by ``|``."""
    from pydantic import ValidationError

    from graphflow.cli import main
    from graphflow.meta.trainer import Trainer
    from graphflow.spec import ExperimentSpec

    try:
        spec = ExperimentSpec.model_validate(dict(TINY_EXPERIMENT, name=name))
    except ValidationError:
        name = name.replace("/", "|").replace("\\", "|")
        spec = ExperimentSpec.model_validate(dict(TINY_EXPERIMENT, name=name))
    Trainer(spec, tmp_path / "train").train(progress=False)
    checkpoint, page = tmp_path / "train" / "checkpoint.npz", tmp_path / "run.html"
    assert main(["explore", str(checkpoint), "--nodes", "dense2/*", "--per-node", "--out", str(page)]) == 0
    _assert_renders(browser, page, f"{name} (checkpoint.npz, meta-step 1): sinusoid, seed 0")
