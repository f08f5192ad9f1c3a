// Shared by the notebook widgets (anywidget ESM, no build step): DOM helpers, number
// formats, the SVG line chart and the kernel-interrupt fallback of the Stop buttons.  The
// Python side prepends this file to each widget's own script.
const SVG = "http://www.w3.org/2000/svg";
const W = 420, H = 150, PAD = { l: 46, r: 10, t: 10, b: 20 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function s(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fmt(x, digits = 4) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

function duration(sec) {
  if (sec === null || sec === undefined || sec < 0 || !isFinite(sec)) return "–";
  sec = Math.round(sec);
  const m = Math.floor(sec / 60), r = sec % 60;
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
                 : `${m}:${String(r).padStart(2, "0")}`;
}

// A line chart of several series [{name, points: [[x, y], ...], color?, cls?, width?, dash?}]
// into an <svg>.  opts: xLabel (the x axis' name, default "iteration"), legend (default: when
// there are 2 to 10 series), empty (the text shown before the first point).
function drawChart(svg, series, title, opts = {}) {
  const xLabel = opts.xLabel === undefined ? "iteration" : opts.xLabel;
  svg.replaceChildren();
  const all = series.flatMap((d) => d.points);
  svg.append(s("text", { x: PAD.l, y: 9, class: "wb-chart-title" }));
  svg.lastChild.textContent = title;
  if (all.length === 0) {
    const t = s("text", { x: W / 2, y: H / 2, class: "wb-chart-empty", "text-anchor": "middle" });
    t.textContent = opts.empty || "waiting for the first point…";
    svg.append(t);
    return 0;
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 + 1e-6; y1 += Math.abs(y1) * 0.05 + 1e-6; }
  const px = (x) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const py = (y) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b - 4);
  svg.append(s("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "wb-axis" }));
  svg.append(s("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: "wb-axis" }));
  const label = (x, y, text, anchor) => {
    const t = s("text", { x, y, "text-anchor": anchor, class: "wb-tick" });
    t.textContent = text;
    svg.append(t);
  };
  label(PAD.l - 4, py(y1) + 4, fmt(y1, 3), "end");
  label(PAD.l - 4, py(y0), fmt(y0, 3), "end");
  label(PAD.l, H - 6, String(Math.round(x0)), "start");
  label(W - PAD.r, H - 6, `${xLabel} ${Math.round(x1)}`, "end");
  series.forEach((d, i) => {
    if (!d.points.length) return;
    const color = d.color || COLORS[i % COLORS.length];
    const pts = d.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
    const line = s("polyline", { points: pts, fill: "none", stroke: color,
                                 class: `wb-line ${d.cls || ""}`.trim(), "data-series": d.name });
    if (d.width) line.setAttribute("stroke-width", d.width);
    if (d.dash) line.setAttribute("stroke-dasharray", d.dash);
    svg.append(line);
    if (d.points.length <= 40) {
      for (const p of d.points) svg.append(s("circle", { cx: px(p[0]), cy: py(p[1]), r: 2.2, fill: color }));
    }
    const legend = opts.legend === undefined ? series.length > 1 && series.length <= 10 : opts.legend;
    if (legend) {
      const t = s("text", { x: W - PAD.r, y: PAD.t + 10 + 12 * i, "text-anchor": "end", fill: color, class: "wb-tick" });
      t.textContent = d.name;
      svg.append(t);
    }
  });
  return all.length;
}

function baseUrl() {
  const cfg = document.getElementById("jupyter-config-data");
  try { return cfg ? JSON.parse(cfg.textContent).baseUrl || "/" : "/"; } catch { return "/"; }
}

function pageToken() {
  const cfg = document.getElementById("jupyter-config-data");
  try { return cfg ? JSON.parse(cfg.textContent).token || "" : ""; } catch { return ""; }
}

// Interrupting the kernel stops training gracefully (the Dashboard turns SIGINT into a stop
// request): the fallback when the kernel cannot take widget messages while it trains.
async function interruptKernel(kernelId) {
  if (!kernelId) return false;
  const xsrf = (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1];
  const headers = {};
  if (xsrf) headers["X-XSRFToken"] = decodeURIComponent(xsrf);
  const token = pageToken();
  if (token) headers["Authorization"] = `token ${token}`;
  try {
    const r = await fetch(`${baseUrl()}api/kernels/${kernelId}/interrupt`,
                          { method: "POST", headers, credentials: "same-origin" });
    return r.ok;
  } catch { return false; }
}


// The Stop button of a widget: sends "stop" to the kernel; without an acknowledgement within
// 2.5 s (the kernel is busy and its comms have no subshell) it interrupts the kernel instead,
// which the Python side also turns into a graceful stop.  ``state.sent`` says a stop was sent
// (a widget may reset it for its next run); ``state.dispose()`` removes the handlers.
function wireStop(model, button) {
  const state = { sent: false, fallback: null };
  button.addEventListener("click", () => {
    if (state.sent) return;
    state.sent = true;
    button.disabled = true;
    button.textContent = "stopping…";
    model.send({ type: "stop" });
    state.fallback = setTimeout(() => {
      if (model.get("status") === "running") interruptKernel(model.get("kernel_id"));
    }, 2500);
  });
  const onCustom = (msg) => {
    if (msg && msg.type === "stopping" && state.fallback) {
      clearTimeout(state.fallback);
      state.fallback = null;
    }
  };
  model.on("msg:custom", onCustom);
  state.dispose = () => {
    model.off("msg:custom", onCustom);
    if (state.fallback) clearTimeout(state.fallback);
  };
  return state;
}
