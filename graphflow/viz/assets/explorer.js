// The graphflow run explorer: draws the node graph, the step slider and per-node histories from the
// JSON embedded in the page (id "run-data"). Vanilla JavaScript and inline SVG; no network access.
// The page builds DOM only for what is on screen: one box per node (small graphs) or per block part
// (collapsed graphs), the cells of the recorded nodes of an expanded part, and the filter's matches.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const MARGIN = 70;
  const SIGNED = { update: true, descent: true };
  const VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  const DIVERGING = ["#2166ac", "#92c5de", "#f7f7f7", "#f4a582", "#b2182b"];
  const SERIES = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const FULL_GRID = 64;       // parts with at most this many rows and columns show their whole grid
  const MAX_LISTED = 2000;    // the filter lists at most this many matches
  const quantities = Object.keys(data.quantities);
  const state = { step: 0, quantity: quantities.includes("abs_update") ? "abs_update" : quantities[0],
                  selected: null, expanded: [], shared: false, matches: null, scales: null };

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

  // An SVG text cut with an ellipsis to at most `width` pixels; the whole text stays in a tooltip
  // (data-fit holds the width, which the tests check every label against).
  function fitText(t, text, width) {
    t.textContent = text;
    t.setAttribute("data-fit", width);
    if (t.getComputedTextLength() <= width) return t;
    let lo = 0, hi = text.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      t.textContent = text.slice(0, mid) + "…";
      if (t.getComputedTextLength() <= width) lo = mid; else hi = mid - 1;
    }
    t.textContent = text.slice(0, lo) + "…";
    t.classList.add("cut");
    svg("title", {}, t).textContent = text;
    return t;
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

  function rowAt(q, part) {
    const rows = (data.values[q] || {})[part];
    return rows ? rows[state.step] : null;
  }

  function span(values, q) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) return null;
    if (SIGNED[q]) { const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1; return [-m, m]; }
    return hi > lo ? [lo, hi] : [lo, lo + 1e-12];
  }

  // The colour scales of the current step and quantity: by default one per part (a large value in
  // one part leaves the others' colours alone), or one over all parts with the toggle; either way
  // late, small updates stay visible, and the scale panel lists what each colour means.
  function computeScales() {
    const q = state.quantity, perPart = {};
    let all = [];
    for (const part of Object.keys(data.values[q] || {})) {
      const row = rowAt(q, part) || [];
      const s = span(row, q);
      if (s) perPart[part] = s;
      all = all.concat(s || []);
    }
    const shared = span(all, q) || [0, 1];
    state.scales = { shared, perPart };
  }

  function scaleOf(part) {
    return state.shared ? state.scales.shared : state.scales.perPart[part] || state.scales.shared;
  }

  function colourOf(part, v) {
    if (v === null || v === undefined) return null;
    const [lo, hi] = scaleOf(part);
    return mix(SIGNED[state.quantity] ? DIVERGING : VIRIDIS, (v - lo) / (hi - lo));
  }

  function valueOfNode(id) {
    const w = where[id];
    if (!w) return null;
    const row = rowAt(state.quantity, w[0]);
    return row ? row[w[1]] : null;
  }

  function valueOfPart(part) {
    const row = rowAt(state.quantity, part);
    if (!row) return null;
    const vals = row.filter((v) => v !== null);
    return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }

  function gradientBar() {
    const stops = (SIGNED[state.quantity] ? DIVERGING : VIRIDIS).join(",");
    return html("span", { class: "bar", style: `background:linear-gradient(to right,${stops})` });
  }

  function drawScales() {
    const q = state.quantity, label = data.quantities[q];
    document.getElementById("scale").textContent = state.shared
      ? `one scale for all parts: ${fmt(state.scales.shared[0])} to ${fmt(state.scales.shared[1])}`
      : "a scale per part (listed beside the loss)";
    const box = document.getElementById("scales");
    box.innerHTML = "";
    html("h2", {}, box, `colour scale${state.shared ? "" : "s"} of ${label} at step ${state.step}`);
    const table = html("table", { class: "scales" }, box);
    const rows = state.shared ? [["all parts", state.scales.shared]] : Object.entries(state.scales.perPart);
    for (const [part, [lo, hi]] of rows) {
      const tr = html("tr", { class: "scale-row", "data-part": part, "data-lo": lo, "data-hi": hi }, table);
      html("td", { class: "fit", title: part }, tr, part);
      html("td", { class: "num" }, tr, fmt(lo));
      html("td", {}, tr).appendChild(gradientBar());
      html("td", { class: "num" }, tr, fmt(hi));
    }
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
      title.textContent = `${b.label.replace("\n", ": ")} (${b.recorded ? "click" : "not recorded"})`;
      if (data.collapsed) {
        svg("rect", { x: x - 62, y: y - 21, width: 124, height: 42, rx: 6 }, g);
        b.label.split("\n").forEach((line, k) => {
          fitText(svg("text", { x, y: y - 4 + 14 * k, "text-anchor": "middle" }, g), line, data.label_width);
        });
      } else {
        svg("circle", { cx: x, cy: y, r: 8 }, g);
        fitText(svg("text", { x, y: y - 11, "text-anchor": "middle" }, g), b.label, data.label_width);
      }
      if (b.recorded) {
        g.addEventListener("click", () => (data.collapsed ? toggleExpanded(b.id) : select(b.id)));
      }
      boxElements[b.id] = g;
    }
  }

  function boxMatches(b) {
    if (!state.matches) return null;
    return data.collapsed ? state.matches.parts.has(b.id) : state.matches.ids.has(b.id);
  }

  function recolourGraph() {
    computeScales();
    for (const b of data.boxes) {
      const g = boxElements[b.id];
      const v = data.collapsed ? valueOfPart(b.id) : valueOfNode(b.id);
      const shape = g.querySelector(data.collapsed ? "rect" : "circle");
      const fill = b.recorded ? colourOf(b.part, v) : null;
      shape.setAttribute("fill", fill || (b.recorded ? "#dddddd" : "#ffffff"));
      const dark = fill && isDark(fill);
      for (const t of g.querySelectorAll("text")) t.style.fill = data.collapsed && dark ? "#ffffff" : "";
      g.classList.toggle("selected", !data.collapsed && b.id === state.selected);
      g.classList.toggle("expanded", data.collapsed && state.expanded.includes(b.id));
      const m = boxMatches(b);
      g.classList.toggle("match", m === true);
      g.classList.toggle("nomatch", m === false);
    }
    for (const part of state.expanded) recolourCells(part);
    drawScales();
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

  function count(n) {
    return n.toLocaleString("en-US");
  }

  function sortedUnique(values) {
    return Array.from(new Set(values)).sort((a, b) => a - b);
  }

  function range(n) {
    return Array.from({ length: n }, (_, k) => k);
  }

  // The grid of a part: every row and column when the part is small, else only the rows and
  // columns that hold a recorded node (a 1000 x 1000 matrix with a few hundred recorded weights
  // draws those, not a million empty cells). Every drawn row and column is labelled by its index.
  function drawCard(part) {
    const info = data.parts[part];
    const card = html("div", { class: "part-card", id: "card-" + part }, document.getElementById("expanded"));
    const h = html("h3", {}, card);
    const total = info.shape[0] * info.shape[1];
    const heading = `${part}: ${count(info.ids.length)} recorded of ${count(total)} nodes (${info.role})`;
    html("span", { class: "fit", title: heading }, h, heading);
    const close = html("button", {}, h, "collapse");
    close.addEventListener("click", () => toggleExpanded(part));
    const weights = info.role === "weight";
    const full = info.shape[0] <= FULL_GRID && info.shape[1] <= FULL_GRID;
    const rows = full ? range(info.shape[0]) : sortedUnique(info.cells.map((c) => c[0]));
    const cols = full ? range(info.shape[1]) : sortedUnique(info.cells.map((c) => c[1]));
    const note = full ? (weights ? "rows: inputs i, columns: neurons j" : "node index")
      : `the ${count(rows.length)} of ${count(info.shape[0])} rows and ${count(cols.length)} of ` +
        `${count(info.shape[1])} columns holding recorded nodes` +
        (weights ? " (rows: inputs i, columns: neurons j)" : "");
    html("p", { class: "meta fit grid-note", title: note }, card, note);
    const size = Math.max(10, Math.min(22, Math.floor(640 / Math.max(cols.length, 1))));
    const digits = (values) => String(values.length ? values[values.length - 1] : 0).length;
    const left = 8 + 6 * digits(rows), top = 6 + 6 * digits(cols);
    const s = svg("svg", { width: left + cols.length * size + 4, height: top + rows.length * size + 4,
                           class: "grid", "data-part": part }, card);
    const rowAtIndex = new Map(rows.map((r, k) => [r, k])), colAtIndex = new Map(cols.map((c, k) => [c, k]));
    svg("rect", { x: left, y: top, width: cols.length * size, height: rows.length * size, class: "grid-back" }, s);
    if (rows.length > 1 || weights) {
      rows.forEach((r, k) => {
        const y = top + (k + 0.5) * size + 3;
        const t = svg("text", { x: left - 3, y, "text-anchor": "end", class: "row-index" }, s);
        t.textContent = r;
      });
    }
    cols.forEach((c, k) => {
      const x = left + (k + 0.5) * size + 3, y = top - 3;
      const t = svg("text", { x, y, transform: `rotate(-90 ${x} ${y})`, class: "col-index" }, s);
      t.textContent = c;
    });
    info.cells.forEach(([r, c], k) => {
      const id = info.ids[k];
      const rect = svg("rect", { x: left + colAtIndex.get(c) * size, y: top + rowAtIndex.get(r) * size,
                                 width: size, height: size, class: "cell recorded", "data-id": id }, s);
      svg("title", {}, rect).textContent = id;
      rect.addEventListener("click", () => select(id));
    });
    recolourCells(part);
  }

  function recolourCells(part) {
    const grid = document.querySelector(`svg.grid[data-part="${CSS.escape(part)}"]`);
    if (!grid) return;
    for (const rect of grid.querySelectorAll("rect.cell")) {
      const id = rect.getAttribute("data-id");
      rect.setAttribute("fill", colourOf(part, valueOfNode(id)) || "#dddddd");
      rect.classList.toggle("selected", id === state.selected);
      rect.classList.toggle("nomatch", state.matches !== null && !state.matches.ids.has(id));
    }
  }

  // ------------------------------------------------------------------ the filter
  // The patterns of `graphflow inspect --nodes` and `Run.select`: comma-separated ids or globs,
  // <block glob>/<label glob>[<index>,...] with an index `*`, a number, an `a:b` range or a glob
  // of digits (`1*`); or one /regular expression/ searched in the whole id.
  function splitPatterns(text) {
    const out = [];
    let depth = 0, start = 0;
    for (let k = 0; k < text.length; k++) {
      depth += (text[k] === "[") - (text[k] === "]");
      if (text[k] === "," && depth === 0) { out.push(text.slice(start, k)); start = k + 1; }
    }
    out.push(text.slice(start));
    return out.map((p) => p.trim()).filter((p) => p);
  }

  function globRegExp(glob) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp(`^${body}$`);
  }

  function indexTest(glob) {
    if (glob === "*" || glob === "") return () => true;
    if (/^\d+$/.test(glob)) { const n = Number(glob); return (v) => v === n; }
    const m = /^(\d*):(\d*)$/.exec(glob);
    if (m) {
      const lo = m[1] === "" ? -Infinity : Number(m[1]), hi = m[2] === "" ? Infinity : Number(m[2]);
      return (v) => v >= lo && v < hi;
    }
    const re = globRegExp(glob);
    return (v) => re.test(String(v));
  }

  const REGEX = /^\/(.*)\/([imsu]*)$/;  // a regular expression takes the whole box (commas included)

  // One pattern -> a test of (part, position among its recorded nodes); throws a message on bad input.
  function patternTest(pattern) {
    const rx = REGEX.exec(pattern);
    if (rx) {
      const re = new RegExp(rx[1], rx[2]);
      return (part, k) => re.test(data.parts[part].ids[k]);
    }
    const m = /^([^/[\]]+)\/([^/[\]]+)(?:\[([^\]]*)\])?$/.exec(pattern);
    if (!m) throw `${pattern}: not a node id or pattern; expected <block>/<label>[<index>] (dense2/w[3,*]) or /regex/`;
    const block = globRegExp(m[1]), label = globRegExp(m[2]);
    const index = m[3] === undefined ? null : m[3].split(",").map((p) => indexTest(p.trim()));
    return (part, k) => {
      const [b, l] = part.split("/");
      if (!block.test(b) || !label.test(l)) return false;
      if (index === null) return true;
      const info = data.parts[part];
      const want = info.role === "weight" ? 2 : 1;
      if (index.length !== want) {
        const example = want === 2 ? `two indices, as in '${part}[i,j]'` : `one index, as in '${part}[3]'`;
        throw `${pattern}: '${part}' ids take ${example}`;
      }
      const [r, c] = info.cells[k];
      return want === 2 ? index[0](r) && index[1](c) : index[0](c);
    };
  }

  function applyFilter(text) {
    const count = document.getElementById("filter-count"), list = document.getElementById("filter-list");
    list.innerHTML = "";
    count.classList.remove("error");
    if (!text.trim()) {
      state.matches = null;
      count.textContent = "";
    } else {
      try {
        const whole = text.trim();
        const tests = (REGEX.test(whole) ? [whole] : splitPatterns(text)).map(patternTest);
        const ids = new Set(), parts = new Set();
        for (const [part, info] of Object.entries(data.parts)) {
          info.ids.forEach((id, k) => {
            if (tests.some((t) => t(part, k))) { ids.add(id); parts.add(part); }
          });
        }
        state.matches = { ids, parts };
        count.textContent = ids.size === 0 ? "no recorded node matches"
          : `${ids.size} matching recorded node${ids.size === 1 ? "" : "s"}` +
            (ids.size > MAX_LISTED ? ` (the first ${MAX_LISTED} listed)` : "");
        let n = 0;
        for (const id of ids) {
          if (n++ >= MAX_LISTED) break;
          const li = html("li", { "data-id": id, title: id, class: "fit" }, list, id);
          li.addEventListener("click", () => reveal(id));
        }
      } catch (message) {
        state.matches = null;
        count.textContent = String(message instanceof Error ? message.message : message);
        count.classList.add("error");
      }
    }
    recolourGraph();
  }

  // A listed match: expand its part (collapsed graphs) and show its history.
  function reveal(id) {
    const part = where[id][0];
    if (data.collapsed && !state.expanded.includes(part)) toggleExpanded(part);
    select(id);
  }

  // ------------------------------------------------------------------ charts
  function lineChart(parent, title, series, opts) {
    opts = opts || {};
    const W = 400, H = opts.height || 104, L = 52, R = 8, T = 6, B = 18;
    const wrap = html("div", { class: "chart" }, parent);
    html("h3", { class: "fit", title }, wrap, title);
    const s = svg("svg", { width: W, height: H }, wrap);
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
      // legend entries flow left to right and wrap onto new lines, each name fitted to the width
      const g = svg("g", { class: "legend" }, s);
      let x = L, y = H + 3;
      series.forEach((se, i) => {
        const t = fitText(svg("text", { x: 0, y: 0 }, g), se.name, W - L - R - 12);
        const width = 12 + t.getComputedTextLength();
        if (x > L && x + width > W - R) { x = L; y += 13; }
        svg("rect", { x, y, width: 9, height: 9, fill: se.colour || SERIES[i % SERIES.length] }, g);
        t.setAttribute("x", x + 12);
        t.setAttribute("y", y + 8);
        g.appendChild(t);
        x += width + 8;
      });
      s.setAttribute("height", y + 14);
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
    const row = (name, v, key) => {
      const tr = html("tr", { "data-key": key }, table);
      html("td", {}, tr, name);
      html("td", { class: "num" }, tr, fmt(v));
    };
    html("caption", { style: "text-align:left;font-size:12px;color:#555" }, table, `at step ${state.step}`);
    if (node.value) row("value before the step", node.value[state.step], "value");
    if (node.update) row("update", node.update[state.step], "update");
    if (node.descent) row(data.descent, node.descent[state.step], "descent");
    if (node.message_in_norm) row("incoming message norm", node.message_in_norm[state.step], "message_in_norm");
    if (node.message_out_norm) row("outgoing message norm", node.message_out_norm[state.step], "message_out_norm");
    if (node.update) lineChart(box, "update (learned)", [{ name: "update", values: node.update, colour: "#1f77b4" }]);
    if (node.descent) {
      lineChart(box, `${data.descent}, backprop`,
        [{ name: data.descent, values: node.descent, colour: "#d62728" }]).classList.add("descent-chart");
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
    const shared = document.getElementById("shared-scale");
    shared.checked = state.shared;
    shared.addEventListener("change", () => { state.shared = shared.checked; recolourGraph(); });
    const filter = document.getElementById("filter");
    filter.addEventListener("input", () => applyFilter(filter.value));
    drawGraph();
    setStep(0);
    // when the page is ready for input, in milliseconds since navigation started (the scale test reads it)
    window.explorerReady = performance.now();
  }

  init();
})();
