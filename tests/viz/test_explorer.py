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


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(c) for c in colour[colour.index("(") + 1:-1].split(","))


def _assert_one_sign_convention(p, run, node_id: str, step: int) -> None:
    """The details panel's value, its chart and the colour selector all show -gradient, by one label."""
    label = "descent direction (\u2212gradient)"
    row = p.locator('#details tr[data-key="descent"] td')
    assert row.nth(0).inner_text() == label
    gradient = float(run.node(node_id)["gradient"].mean("task").values[step])
    assert float(row.nth(1).inner_text()) == pytest.approx(-gradient, rel=5e-3, abs=1e-6)  # 3 digits shown
    assert p.locator("#details .descent-chart h3").inner_text().startswith(label)
    assert p.locator('#quantity option[value="descent"]').inner_text() == label
    assert "backprop gradient" not in p.inner_text("#details").replace(label, "")


def _indices(p, part: str) -> tuple[list[int], list[int]]:
    """The row and column indices written beside the expanded grid of ``part``."""
    grid = f'svg.grid[data-part="{part}"]'
    rows = [int(t) for t in p.locator(f"{grid} text.row-index").all_text_contents()]
    cols = [int(t) for t in p.locator(f"{grid} text.col-index").all_text_contents()]
    return rows, cols


LABELS_OUTSIDE = """() => {
  const bad = [];
  for (const t of document.querySelectorAll("svg text[data-fit]")) {
    if (t.getComputedTextLength() > Number(t.dataset.fit) + 0.5) bad.push("wider than its box: " + t.textContent);
    const box = t.closest("g.box");
    const rect = box && box.querySelector("rect");
    if (rect) {
      const r = rect.getBBox(), b = t.getBBox();
      if (b.x < r.x || b.x + b.width > r.x + r.width) bad.push("outside its box: " + t.textContent);
    }
    if (t.classList.contains("cut") && !t.querySelector("title")) bad.push("cut without a tooltip: " + t.textContent);
  }
  for (const e of document.querySelectorAll(".fit")) {
    const ellipsis = getComputedStyle(e).textOverflow === "ellipsis" && e.title === e.textContent;
    if (e.scrollWidth > e.clientWidth + 1 && !ellipsis)
      bad.push("spills: " + e.textContent);
  }
  for (const e of document.querySelectorAll("#side > section, #controls, .part-card h3, #filter-box"))
    if (e.scrollWidth > e.clientWidth + 1) bad.push("overflows: " + (e.id || e.className));
  for (const s of document.querySelectorAll(".chart svg")) {
    const w = Number(s.getAttribute("width"));
    for (const t of s.querySelectorAll(".legend text")) {
      const b = t.getBBox();
      if (b.x + b.width > w) bad.push("legend past its chart: " + t.textContent);
    }
  }
  return bad;
}"""
"""Every label of the page that leaves its box: an SVG label wider than the width it was fitted to
(or, in a part's box, past the box's edge), a cut label without the full text in a tooltip, HTML
text overflowing its element without an ellipsis and tooltip, a panel wider than itself, a legend
entry past its chart."""


def _assert_labels_fit(p) -> None:
    assert p.evaluate(LABELS_OUTSIDE) == []


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
        _assert_one_sign_convention(p, run, "dense2/w[2,0]", step=0)
        cursor = p.locator("#details .chart .cursor").first
        x0 = cursor.get_attribute("x1")
        before = _fill(p, 'g.box[data-id="dense2/w[2,0]"] circle')
        page.set_step(2)
        assert p.inner_text("#step-label") == "step 2"
        assert p.locator("#details .chart .cursor").first.get_attribute("x1") != x0
        assert _fill(p, 'g.box[data-id="dense2/w[2,0]"] circle') != before
        _assert_one_sign_convention(p, run, "dense2/w[2,0]", step=2)
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
        assert _indices(p, "dense2/w") == (list(range(20)), list(range(20)))
        _assert_labels_fit(p)
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


def test_the_page_data_holds_each_nodes_history_as_run_node_gives_it():
    """The details panel's numbers, computed part by part, equal those of :meth:`Run.node` (rounded
    to 4 digits), with the gradient shown as -gradient."""
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8))))
    xs = np.random.default_rng(0).uniform(-2, 2, (3, 2, 4, 1)).astype(np.float32)
    state = engine.init_network(np.random.default_rng(1), tasks=2)
    _, run = record_run(engine, state, xs, np.sin(xs), "dense0/*,relu1/act[*]", gradients=True)
    nodes = explorer_data(run)["nodes"]
    assert list(nodes) == run.node_ids()
    for nid, entry in nodes.items():
        hist = run.node(nid)
        want = {"message_in_norm": hist.message_norm("message_in").mean("task").values,
                "message_out_norm": hist.message_norm("message_out").mean("task").values,
                "message_out": hist["message_out"].mean(("task", "example")).values}
        if hist.role in ("weight", "bias"):
            want.update(update=hist["update"].mean("task").values, value=hist.value.mean("task").values,
                        descent=-hist["gradient"].mean("task").values)
        assert set(want) <= set(entry) and ("descent" in entry) == (hist.role in ("weight", "bias")), nid
        for name, values in want.items():
            np.testing.assert_allclose(np.array(entry[name], float), values, rtol=1e-3, atol=1e-9,
                                       err_msg=f"{nid} {name}")


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


# ---------------------------------------------------------------------- colour scales, labels
def _scales(p) -> dict[str, tuple[float, float]]:
    rows = p.locator("#scales tr.scale-row")
    return {rows.nth(k).get_attribute("data-part"): (float(rows.nth(k).get_attribute("data-lo")),
                                                     float(rows.nth(k).get_attribute("data-hi")))
            for k in range(rows.count())}


def test_each_part_has_its_own_colour_scale_unless_shared(browser, tmp_path):
    """One huge gradient in dense2/w: dense0/w keeps a scale of its own (its nodes stay told apart);
    the toggle puts every part on one scale, which whitens dense0/w."""
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8))))
    xs = np.random.default_rng(0).uniform(-2, 2, (2, 1, 4, 1)).astype(np.float32)
    _, run = record_run(engine, engine.init_network(np.random.default_rng(1), init_std=0.5), xs, np.sin(xs),
                        "dense0/w,dense2/w", gradients=True)
    gradient = run.parts["dense2/w"].fields["gradient"]
    gradient[:, :, 0] = 1e6 * np.sign(gradient[:, :, 0] + 1e-30)
    small = np.abs(run.parts["dense0/w"].fields["gradient"][0]).mean(0).max()
    page = Page(browser, write_explorer(run, tmp_path / "scales.html", collapsed=False))
    try:
        p = page.page
        p.select_option("#quantity", "descent")
        scales = _scales(p)
        assert set(scales) == {"dense0/w", "dense2/w"}
        assert scales["dense2/w"][1] == pytest.approx(1e6, rel=1e-3)
        assert scales["dense0/w"][1] == pytest.approx(small, rel=2e-3)
        cells = [f'g.box[data-id="dense0/w[0,{j}]"] circle' for j in range(3)]
        own = [_rgb(_fill(p, c)) for c in cells]
        assert len(set(own)) == 3 and max(map(min, own)) < 200  # told apart, at least one strongly coloured
        p.check("#shared-scale")
        assert list(_scales(p)) == ["all parts"] and _scales(p)["all parts"][1] == pytest.approx(1e6, rel=1e-3)
        assert all(min(_rgb(_fill(p, c))) >= 240 for c in cells)  # one scale: the small part is white
        assert "one scale for all parts" in p.inner_text("#scale")
        p.uncheck("#shared-scale")
        assert [_rgb(_fill(p, c)) for c in cells] == own
        assert page.errors == []
    finally:
        page.close()


def test_labels_stay_inside_their_boxes(browser, tmp_path):
    """A free-form graph with a long block name and mixed activations, collapsed: every part label
    fits its box (cut with an ellipsis, the whole text in the tooltip), and so do the expanded grid's
    heading, the scale list, the filter list and the charts' legends."""
    net = gf.FreeForm()
    x = net.input(2)
    h = net.neurons(5, name="a_hidden_layer_with_a_long_name")
    net.connect(x, h, name="weights_into_the_long_named_layer")
    a = net.activation(h, ["relu", "relu", "tanh", "sigmoid", "tanh"])
    o = net.neurons(1)
    net.connect(a, o)
    net.loss(o, "l2")
    graph = gf.build(net)
    spec = gf.LearnerSpec(hidden=2, message_size=6, mlp_hidden=(8, 8))
    engine = Engine(graph, Protocol.init(graph, spec))
    xs = np.random.default_rng(0).uniform(-2, 2, (2, 1, 4, 2)).astype(np.float32)
    _, run = record_run(engine, engine.init_network(np.random.default_rng(1)), xs, np.sin(xs[..., :1]), "*/*",
                        gradients=True)
    page = Page(browser, write_explorer(run, tmp_path / "labels.html", collapsed=True))
    try:
        p = page.page
        part = "weights_into_the_long_named_layer/w"
        p.click(f'g.box[data-id="{part}"]')
        p.click(f'rect.cell[data-id="{part}[1,4]"]')
        p.fill("#filter", f"{part}[*,4]")
        assert p.locator("#filter-list li").all_inner_texts() == [f"{part}[0,4]", f"{part}[1,4]"]
        cut = p.locator("g.box text.cut")
        assert cut.count() >= 2  # the long name and the mixed activations
        full = [b["label"].split("\n") for b in explorer_data(run, collapsed=True)["boxes"]]
        assert {cut.nth(k).locator("title").text_content() for k in range(cut.count())} <= {t for b in full for t in b}
        _assert_labels_fit(p)
        assert page.errors == []
    finally:
        page.close()


# ---------------------------------------------------------------------- at scale
SCALE_PATTERNS = "dense0/w[3,0:100],dense2/w[0:100,7],dense2/b[0:40],dense4/b[*],relu1/act[0:50]"
"""300 recorded nodes of the 784-1000-1000-10 network (1.8M weight nodes)."""
SCALE_FILTERS = ["dense0/w[3,1*]", "dense2/w[5:9,*],relu1/act[4?]", "dense*/b[*]", "*/*"]
READY_WITHIN_S = 10.0


def test_a_run_of_a_784_1000_1000_10_network_opens_and_filters_in_chromium(browser, tmp_path):
    """One recorded inner step (1 task of 2 examples, with gradients) of 784-1000-1000-10 with 300
    nodes recorded: the page is interactive within 10 s of navigation start (``window.explorerReady``,
    the page's own clock), draws one box per block part and no element per unrecorded node, and the
    filter box lists exactly the recorded nodes that :meth:`Run.select` gives for each pattern, in graph
    order (and for a regular expression, the ids it matches). Prints the measured seconds (``pytest -s``).
    A threshold the issue sets, 10 s, against about 1 s measured: no timing benchmark, a limit."""
    import re
    import time

    clock = time.perf_counter()
    graph = gf.build(gf.stack(784, gf.Dense(1000), gf.ReLU(), gf.Dense(1000), gf.ReLU(), gf.Dense(10), gf.L2Loss()))
    assert graph.stats()["nodes"]["weight"] == 1_794_000
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8))))
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-1, 1, (1, 1, 2, 784)).astype(np.float32), rng.uniform(-1, 1, (1, 1, 2, 10)).astype(np.float32)
    built = time.perf_counter()
    _, run = record_run(engine, engine.init_network(rng), xs, ys, SCALE_PATTERNS, gradients=True, group_stats=False)
    assert len(run.node_ids()) == 300
    recorded = time.perf_counter()
    path = write_explorer(run, tmp_path / "scale.html")
    written = time.perf_counter()
    page = Page(browser, path)
    try:
        p = page.page
        p.wait_for_function("window.explorerReady !== undefined", timeout=READY_WITHIN_S * 1000)
        ready_s = p.evaluate("window.explorerReady") / 1000
        elements = p.evaluate("document.getElementsByTagName('*').length")
        assert p.locator("g.box").count() == len(graph.parts())
        timings = []
        for pattern in SCALE_FILTERS:
            start = p.evaluate("performance.now()")
            p.fill("#filter", pattern)
            shown = p.locator("#filter-list li").evaluate_all("items => items.map((li) => li.dataset.id)")
            timings.append((p.evaluate("performance.now()") - start) / 1000)
            chosen = set(run.select(pattern))
            assert shown and shown == [nid for nid in run.node_ids() if nid in chosen], pattern  # in graph order
            assert p.inner_text("#filter-count").startswith(f"{len(shown)} matching recorded node")
        p.fill("#filter", r"/^dense2\/w\[\d*5,/")
        assert p.locator("#filter-list li").all_inner_texts() == [
            i for i in run.node_ids() if re.match(r"dense2/w\[\d*5,", i)]
        p.fill("#filter", r"/^dense0\/w\[3,(1|2)\d?\]$|,7\]$/")  # commas inside a regular expression are its own
        assert p.locator("#filter-list li").all_inner_texts() == [
            i for i in run.node_ids() if re.search(r"^dense0/w\[3,(1|2)\d?\]$|,7\]$", i)]
        p.fill("#filter", "dense2/w[3]")
        assert "take two indices" in p.inner_text("#filter-count") and p.locator("#filter-list li").count() == 0
        p.fill("#filter", "")
        p.click('g.box[data-id="dense2/w"]')
        assert _indices(p, "dense2/w") == (list(range(100)), [7])  # the recorded rows and columns only
        assert p.locator('svg.grid[data-part="dense2/w"] rect.cell').count() == 100
        assert page.errors == []
    finally:
        page.close()
    print(f"\n784-1000-1000-10, {graph.stats()['total_nodes']:,} nodes, 300 recorded: graph and engine "
          f"{built - clock:.1f} s, a random network and one recorded inner step {recorded - built:.1f} s, "
          f"explorer file "
          f"{written - recorded:.2f} s ({path.stat().st_size / 1e6:.2f} MB); in Chromium: interactive "
          f"{ready_s:.2f} s after navigation start, {elements} elements, filters {max(timings):.2f} s at most")
    assert ready_s < READY_WITHIN_S
    assert elements < 3000  # 300 recorded nodes, 1.8M not
