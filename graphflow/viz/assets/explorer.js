// The graphflow run explorer: draws the node graph, the step slider and per-node histories from the
// JSON embedded in the page (id "run-data"). Vanilla JavaScript and inline SVG; no network access.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const MARGIN = 70;
  const SIGNED = { update: true, gradient: true };
  const VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  const DIVERGING = ["#2166ac", "#92c5de", "#f7f7f7", "#f4a582", "#b2182b"];
  const SERIES = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const quantities = Object.keys(data.quantities);
  const state = { step: 0, quantity: quantities.includes("abs_update") ? "abs_update" : quantities[0],
                  selected: null, expanded: [] };

  // node id -> [part, position among the part's recorded nodes]
  const where = {};
  for (const [part, info] of Object.entries(data.parts)) {
    info.ids.forEach((id, k) => { where[id] = [part, k]; });
  }

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(tag, attrs, parent, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
  }

  // ------------------------------------------------------------------ colours
  function mix(stops, t) {
    t = Math.min(1, Math.max(0, t));
    const x = t * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(x));
    const f = x - k;
    const a = parseInt(stops[k].slice(1), 16), b = parseInt(stops[k + 1].slice(1), 16);
    const ch = (s) => Math.round(((a >> s) & 255) * (1 - f) + ((b >> s) & 255) * f);
    return `rgb(${ch(16)},${ch(8)},${ch(0)})`;
  }

  // The colour scale spans the values of the current step (over all parts), so that late, small
  // updates stay visible; the scale shown beside the selector says what it is.
  function extent(q) {
    let lo = Infinity, hi = -Infinity;
    for (const rows of Object.values(data.values[q] || {})) {
      for (const v of rows[state.step]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!Number.isFinite(lo)) return [0, 1];
    if (SIGNED[q]) { const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1; return [-m, m]; }
    return hi > lo ? [lo, hi] : [lo, lo + 1e-12];
  }

  function colourOf(q, v) {
    if (v === null || v === undefined) return null;
    const [lo, hi] = extent(q);
    return mix(SIGNED[q] ? DIVERGING : VIRIDIS, (v - lo) / (hi - lo));
  }

  function valueOfNode(id) {
    const w = where[id];
    if (!w) return null;
    const rows = (data.values[state.quantity] || {})[w[0]];
    return rows ? rows[state.step][w[1]] : null;
  }

  function valueOfPart(part) {
    const rows = (data.values[state.quantity] || {})[part];
    if (!rows) return null;
    const vals = rows[state.step].filter((v) => v !== null);
    return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }

  // ------------------------------------------------------------------ the graph
  const graph = document.getElementById("graph");
  const boxElements = {};

  function drawGraph() {
    graph.setAttribute("width", data.width + 2 * MARGIN);
    graph.setAttribute("height", data.height + 2 * MARGIN);
    const centre = (b) => [b.x + MARGIN, b.y + MARGIN];
    for (const [s, d] of data.arrows) {
      const [x1, y1] = centre(data.boxes[s]), [x2, y2] = centre(data.boxes[d]);
      svg("line", { x1, y1, x2, y2, class: "arrow" }, graph);
    }
    for (const b of data.boxes) {
      const [x, y] = centre(b);
      const g = svg("g", { class: "box " + (b.recorded ? "recorded" : "unrecorded"), "data-id": b.id }, graph);
      const title = svg("title", {}, g);
      title.textContent = b.recorded ? `${b.id} (click)` : `${b.id} (not recorded)`;
      if (data.collapsed) {
        svg("rect", { x: x - 62, y: y - 21, width: 124, height: 42, rx: 6 }, g);
        b.label.split("\n").forEach((line, k) => {
          const t = svg("text", { x, y: y - 4 + 14 * k, "text-anchor": "middle" }, g);
          t.textContent = line;
        });
      } else {
        svg("circle", { cx: x, cy: y, r: 8 }, g);
        const t = svg("text", { x, y: y - 11, "text-anchor": "middle" }, g);
        t.textContent = b.label;
      }
      if (b.recorded) {
        g.addEventListener("click", () => (data.collapsed ? toggleExpanded(b.id) : select(b.id)));
      }
      boxElements[b.id] = g;
    }
  }

  function recolourGraph() {
    for (const b of data.boxes) {
      const g = boxElements[b.id];
      const v = data.collapsed ? valueOfPart(b.id) : valueOfNode(b.id);
      const shape = g.querySelector(data.collapsed ? "rect" : "circle");
      const fill = b.recorded ? colourOf(state.quantity, v) : null;
      shape.setAttribute("fill", fill || (b.recorded ? "#dddddd" : "#ffffff"));
      const dark = fill && isDark(fill);
      for (const t of g.querySelectorAll("text")) t.style.fill = data.collapsed && dark ? "#ffffff" : "";
      g.classList.toggle("selected", !data.collapsed && b.id === state.selected);
      g.classList.toggle("expanded", data.collapsed && state.expanded.includes(b.id));
    }
    for (const part of state.expanded) recolourCells(part);
    const [lo, hi] = extent(state.quantity);
    const stops = (SIGNED[state.quantity] ? DIVERGING : VIRIDIS).join(",");
    document.getElementById("scale").innerHTML =
      `colours at step ${state.step}: ${fmt(lo)} <span style="display:inline-block;width:120px;height:10px;vertical-align:middle;` +
      `background:linear-gradient(to right,${stops})"></span> ${fmt(hi)}`;
  }

  function isDark(rgb) {
    const m = rgb.match(/\d+/g).map(Number);
    return 0.299 * m[0] + 0.587 * m[1] + 0.114 * m[2] < 128;
  }

  // ------------------------------------------------------------------ expanded parts (collapsed graphs)
  function toggleExpanded(part) {
    const k = state.expanded.indexOf(part);
    if (k >= 0) {
      state.expanded.splice(k, 1);
      const card = document.getElementById("card-" + part);
      if (card) card.remove();
    } else {
      state.expanded.push(part);
      drawCard(part);
    }
    recolourGraph();
  }

  function drawCard(part) {
    const info = data.parts[part];
    const card = html("div", { class: "part-card", id: "card-" + part }, document.getElementById("expanded"));
    const h = html("h3", {}, card);
    html("span", {}, h, `${part}: ${info.ids.length} recorded of ${info.shape[0] * info.shape[1]} nodes (${info.role})`);
    const close = html("button", {}, h, "collapse");
    close.addEventListener("click", () => toggleExpanded(part));
    const [rows, cols] = info.shape;
    const size = Math.max(6, Math.min(22, Math.floor(640 / Math.max(cols, 1))));
    const s = svg("svg", { width: Math.max(cols * size + 60, 280), height: rows * size + 24, class: "grid", "data-part": part }, card);
    const lab = svg("text", { x: 0, y: 10 }, s);
    lab.textContent = rows > 1 ? "rows: inputs i, columns: neurons j" : "nodes";
    info.cells.forEach(([r, c], k) => {
      const id = info.ids[k];
      const rect = svg("rect", { x: 50 + c * size, y: 16 + r * size, width: size, height: size,
                                 class: "cell recorded", "data-id": id }, s);
      const t = svg("title", {}, rect);
      t.textContent = id;
      rect.addEventListener("click", () => select(id));
    });
    recolourCells(part);
  }

  function recolourCells(part) {
    const grid = document.querySelector(`svg.grid[data-part="${CSS.escape(part)}"]`);
    if (!grid) return;
    for (const rect of grid.querySelectorAll("rect.cell")) {
      const id = rect.getAttribute("data-id");
      rect.setAttribute("fill", colourOf(state.quantity, valueOfNode(id)) || "#dddddd");
      rect.classList.toggle("selected", id === state.selected);
    }
  }

  // ------------------------------------------------------------------ charts
  function lineChart(parent, title, series, opts) {
    opts = opts || {};
    const W = 400, H = opts.height || 104, L = 52, R = 8, T = 6, B = 18;
    const wrap = html("div", { class: "chart" }, parent);
    html("h3", {}, wrap, title);
    const s = svg("svg", { width: W, height: H + (series.length > 1 ? 14 : 0) }, wrap);
    let lo = Infinity, hi = -Infinity;
    for (const se of series) for (const v of se.values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (opts.zero !== false) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
    if (hi === lo) { hi = lo + 1; }
    const n = data.steps;
    const X = (k) => L + (n > 1 ? (k * (W - L - R)) / (n - 1) : (W - L - R) / 2);
    const Y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, s);
    svg("line", { x1: L, y1: Y(lo), x2: W - R, y2: Y(lo), class: "axis" }, s);
    if (lo < 0 && hi > 0) svg("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), class: "axis", "stroke-dasharray": "2 2" }, s);
    const zeroApart = lo < 0 && hi > 0 && Math.min(Y(0) - Y(hi), Y(lo) - Y(0)) > 12;
    for (const v of [lo, hi].concat(zeroApart ? [0] : [])) {
      const t = svg("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }, s);
      t.textContent = fmt(v);
    }
    const every = Math.max(1, Math.ceil(n / 10));
    for (let k = 0; k < n; k += every) {
      const t = svg("text", { x: X(k), y: H - 5, "text-anchor": "middle" }, s);
      t.textContent = k;
    }
    series.forEach((se, i) => {
      const colour = se.colour || SERIES[i % SERIES.length];
      let d = "", pen = false;
      se.values.forEach((v, k) => {
        if (v === null) { pen = false; return; }
        d += `${pen ? "L" : "M"}${X(k).toFixed(1)},${Y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) svg("path", { d, stroke: colour, "stroke-width": 1.6, fill: "none" }, s);
      se.values.forEach((v, k) => { if (v !== null) svg("circle", { cx: X(k), cy: Y(v), r: 2.2, fill: colour }, s); });
    });
    svg("line", { x1: X(state.step), y1: T, x2: X(state.step), y2: H - B, class: "cursor" }, s);
    if (series.length > 1) {
      const g = svg("g", { class: "legend" }, s);
      let x = L;
      series.forEach((se, i) => {
        svg("rect", { x, y: H + 3, width: 9, height: 9, fill: se.colour || SERIES[i % SERIES.length] }, g);
        const t = svg("text", { x: x + 12, y: H + 11 }, g);
        t.textContent = se.name;
        x += 16 + 6.2 * se.name.length;
      });
    }
    return wrap;
  }

  function drawLoss() {
    const box = document.getElementById("loss-chart");
    box.innerHTML = "";
    lineChart(box, "mean loss on each step's batch (before its update)", [{ name: "loss", values: data.loss }], { zero: false });
  }

  // ------------------------------------------------------------------ node details
  function select(id) {
    state.selected = id;
    renderDetails();
    recolourGraph();
  }

  function renderDetails() {
    const box = document.getElementById("details");
    box.innerHTML = "";
    const id = state.selected;
    if (!id) { html("p", { class: "hint" }, box, "Click a node to see its message and update history."); return; }
    const node = data.nodes[id];
    html("h2", { class: "node-id", id: "node-title" }, box, id);
    if (!node) {
      html("p", { class: "hint" }, box, "This run has too many recorded nodes to embed every history; " +
        "inspect this one with `graphflow inspect RUN --nodes '" + id + "'`.");
      return;
    }
    html("p", { class: "meta" }, box, `${node.role} node, learner group ${node.group || "–"}` +
      (node.recorded.every(Boolean) ? "" : `; recorded at steps ${node.recorded.map((r, k) => (r ? k : null)).filter((k) => k !== null).join(", ")}`));
    const table = html("table", { class: "now" }, box);
    const row = (name, v) => { const tr = html("tr", {}, table); html("td", {}, tr, name); html("td", {}, tr, fmt(v)); };
    html("caption", { style: "text-align:left;font-size:12px;color:#555" }, table, `at step ${state.step}`);
    if (node.value) row("value before the step", node.value[state.step]);
    if (node.update) row("update", node.update[state.step]);
    if (node.gradient) row("backprop gradient", node.gradient[state.step]);
    if (node.message_in_norm) row("incoming message norm", node.message_in_norm[state.step]);
    if (node.message_out_norm) row("outgoing message norm", node.message_out_norm[state.step]);
    if (node.update) lineChart(box, "update (learned)", [{ name: "update", values: node.update, colour: "#1f77b4" }]);
    if (node.gradient) {
      lineChart(box, "−gradient (backprop on the same loss)",
        [{ name: "−gradient", values: node.gradient.map((v) => (v === null ? null : -v)), colour: "#d62728" }]);
    }
    const norms = [];
    if (node.message_in_norm) norms.push({ name: "incoming", values: node.message_in_norm, colour: "#2ca02c" });
    if (node.message_out_norm) norms.push({ name: "outgoing", values: node.message_out_norm, colour: "#9467bd" });
    if (norms.length) lineChart(box, "message norms (mean over examples)", norms);
    for (const name of ["message_out", "message_in"]) {
      if (!node[name]) continue;
      const channels = node[name + "_channels"];
      const series = channels.map((c, k) => ({ name: c, values: node[name].map((row) => (row ? row[k] : null)) }));
      lineChart(box, `${name === "message_out" ? "outgoing" : "incoming"} message channels (batch mean)`, series, { height: 120 });
    }
  }

  // ------------------------------------------------------------------ controls
  function setStep(k) {
    state.step = k;
    document.getElementById("step-label").textContent = `step ${k}`;
    recolourGraph();
    drawLoss();
    renderDetails();
  }

  function init() {
    document.getElementById("title").textContent = data.title;
    document.getElementById("subtitle").textContent = data.subtitle;
    document.getElementById("graph-title").textContent = data.graph_title;
    document.getElementById("graph-hint").textContent = data.collapsed
      ? "Collapsed to block parts (colour: mean over the recorded nodes). Click a recorded part to expand it into its nodes."
      : "Click a recorded node (solid outline) to see its history; dashed nodes were not recorded.";
    const slider = document.getElementById("step");
    slider.max = String(data.steps - 1);
    slider.addEventListener("input", () => setStep(Number(slider.value)));
    const select_ = document.getElementById("quantity");
    for (const q of quantities) {
      const o = html("option", { value: q }, select_, data.quantities[q]);
      if (q === state.quantity) o.selected = true;
    }
    select_.addEventListener("change", () => { state.quantity = select_.value; recolourGraph(); });
    drawGraph();
    setStep(0);
  }

  init();
})();
