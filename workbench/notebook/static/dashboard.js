// The live training dashboard (anywidget ESM: no build step).  State comes from the Python
// Dashboard's traits, throttled there; this file only draws.
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

// A line chart of several series [{name, points: [[x, y], ...]}] into an <svg>.
function drawChart(svg, series, title) {
  svg.replaceChildren();
  const all = series.flatMap((d) => d.points);
  svg.append(s("text", { x: PAD.l, y: 9, class: "wb-chart-title" }));
  svg.lastChild.textContent = title;
  if (all.length === 0) {
    const t = s("text", { x: W / 2, y: H / 2, class: "wb-chart-empty", "text-anchor": "middle" });
    t.textContent = "waiting for the first point…";
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
  label(W - PAD.r, H - 6, `iteration ${Math.round(x1)}`, "end");
  series.forEach((d, i) => {
    if (!d.points.length) return;
    const color = COLORS[i % COLORS.length];
    const pts = d.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: pts, fill: "none", stroke: color, class: "wb-line",
                               "data-series": d.name }));
    if (d.points.length <= 40) {
      for (const p of d.points) svg.append(s("circle", { cx: px(p[0]), cy: py(p[1]), r: 2.2, fill: color }));
    }
    if (series.length > 1) {
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

function render({ model, el }) {
  const root = h("div", { class: "wb-dashboard" });
  const title = h("span", { class: "wb-title" });
  const status = h("span", { class: "wb-status" });
  const stop = h("button", { class: "wb-stop", type: "button", title: "Stop training after the current iteration (the model keeps its weights)" }, "■ Stop");
  const header = h("div", { class: "wb-header" }, title, status, stop);
  const bar = h("div", { class: "wb-bar-fill" });
  const progress = h("div", { class: "wb-bar" }, bar);
  const stats = h("div", { class: "wb-stats" });
  const lossSvg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-chart-svg" });
  const valSvg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-chart-svg" });
  const lossBox = h("div", { class: "wb-chart wb-chart-loss" }, lossSvg);
  const valBox = h("div", { class: "wb-chart wb-chart-val" }, valSvg);
  const charts = h("div", { class: "wb-charts" }, lossBox, valBox);
  const message = h("div", { class: "wb-message" });
  const summary = h("table", { class: "wb-summary" });
  root.append(header, progress, stats, charts, message, summary);
  el.append(root);

  let stopSent = false, fallback = null, frame = null;

  stop.addEventListener("click", () => {
    if (stopSent) return;
    stopSent = true;
    stop.disabled = true;
    stop.textContent = "stopping…";
    model.send({ type: "stop" });
    // No acknowledgement while the kernel trains (no comm subshells)? Interrupt it instead.
    fallback = setTimeout(() => { if (model.get("status") === "running") interruptKernel(model.get("kernel_id")); }, 2500);
  });
  const onCustom = (msg) => {
    if (msg && msg.type === "stopping" && fallback) { clearTimeout(fallback); fallback = null; }
  };
  model.on("msg:custom", onCustom);

  function draw() {
    frame = null;
    const st = model.get("status");
    title.textContent = model.get("run") ? `Training ${model.get("run")}` : "Training";
    status.textContent = st;
    status.className = `wb-status wb-status-${st}`;
    root.dataset.status = st;
    const running = st === "running" || st === "waiting";
    stop.disabled = !running || stopSent;
    if (!running) { stop.textContent = st === "stopping" ? "stopping…" : "■ Stop"; }
    if (st === "stopping") stop.textContent = "stopping…";
    const frac = model.get("progress");
    bar.style.width = `${Math.max(0, Math.min(1, frac >= 0 ? frac : model.get("epoch_progress"))) * 100}%`;
    const me = model.get("max_epoch"), mi = model.get("max_iteration");
    stats.replaceChildren(
      h("span", {}, h("b", {}, "epoch "), `${model.get("epoch")}${me ? " / " + me : ""}`),
      h("span", {}, h("b", {}, "iteration "), `${model.get("iteration")}${mi ? " / " + mi : ""}`),
      h("span", { class: "wb-throughput" }, h("b", {}, "records/s "), fmt(model.get("throughput"), 4)),
      h("span", {}, h("b", {}, "ETA "), running ? duration(model.get("eta")) : "–"),
      h("span", {}, h("b", {}, "elapsed "), duration(model.get("elapsed"))),
      h("span", { class: "wb-lr" }, h("b", {}, "learning rate "), fmt(model.get("lr"), 4)),
      h("span", {}, h("b", {}, "loss "), fmt(model.get("last_loss"), 4)),
    );
    const n = drawChart(lossSvg, [{ name: "training loss", points: model.get("loss") }], "training loss");
    lossBox.dataset.points = String(model.get("points"));
    lossBox.dataset.drawn = String(n);
    const metrics = model.get("metrics") || {};
    const names = Object.keys(metrics);
    const m = drawChart(valSvg, names.map((k) => ({ name: k, points: metrics[k] })),
                        names.length ? `validation: ${names.join(", ")}` : "validation");
    valBox.dataset.points = String(m);
    message.textContent = model.get("message");
    message.style.display = model.get("message") ? "" : "none";
    const rows = model.get("summary") || [];
    summary.replaceChildren(...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
    summary.style.display = rows.length ? "" : "none";
  }
  const schedule = () => { if (frame === null) frame = requestAnimationFrame(draw); };
  const keys = ["run", "status", "epoch", "max_epoch", "iteration", "max_iteration", "progress",
                "epoch_progress", "throughput", "eta", "elapsed", "lr", "last_loss", "loss",
                "points", "metrics", "message", "summary"];
  for (const k of keys) model.on(`change:${k}`, schedule);
  draw();
  return () => {
    for (const k of keys) model.off(`change:${k}`, schedule);
    model.off("msg:custom", onCustom);
    if (fallback) clearTimeout(fallback);
    if (frame !== null) cancelAnimationFrame(frame);
  };
}

export default { render };
