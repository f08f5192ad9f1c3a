// The live training dashboard (anywidget ESM: no build step).  State comes from the Python
// Dashboard's traits, throttled there; this file only draws.
// (h, s, fmt, duration, drawChart, wireStop come from common.js, prepended by the
// Python side.)

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
  const layersBox = h("div", { class: "wb-layers" });
  const clusterBox = h("div", { class: "wb-cluster" });
  root.append(header, progress, stats, charts, layersBox, clusterBox, message, summary);
  el.append(root);

  let frame = null;

  const stopper = wireStop(model, stop);

  function draw() {
    frame = null;
    const st = model.get("status");
    title.textContent = model.get("run") ? `Training ${model.get("run")}` : "Training";
    status.textContent = st;
    status.className = `wb-status wb-status-${st}`;
    root.dataset.status = st;
    const running = st === "running" || st === "waiting";
    stop.disabled = !running || stopper.sent;
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
    drawLayers(layersBox, model.get("layers") || [], model.get("profile_iteration"));
    drawCluster(clusterBox, model.get("tasks") || [], model.get("cluster") || {});
    const rows = model.get("summary") || [];
    summary.replaceChildren(...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
    summary.style.display = rows.length ? "" : "none";
  }
  const schedule = () => { if (frame === null) frame = requestAnimationFrame(draw); };
  const keys = ["run", "status", "epoch", "max_epoch", "iteration", "max_iteration", "progress",
                "epoch_progress", "throughput", "eta", "elapsed", "lr", "last_loss", "loss",
                "points", "metrics", "message", "summary", "layers", "profile_iteration",
                "tasks", "cluster"];
  for (const k of keys) model.on(`change:${k}`, schedule);
  draw();
  return () => {
    for (const k of keys) model.off(`change:${k}`, schedule);
    stopper.dispose();
    if (frame !== null) cancelAnimationFrame(frame);
  };
}

// The sampled per-layer profile: one row per leaf layer, a bar of forward (blue) then
// backward (orange) milliseconds on a common scale; the slowest layer is highlighted.
function drawLayers(box, layers, iteration) {
  box.style.display = layers.length ? "" : "none";
  if (!layers.length) { box.replaceChildren(); return; }
  const most = Math.max(...layers.map((l) => l.forward_ms + l.backward_ms), 1e-9);
  const total = layers.reduce((a, l) => a + l.forward_ms + l.backward_ms, 0);
  const rows = layers.map((l) => {
    const fw = h("span", { class: "wb-bar-fw", style: `width:${(100 * l.forward_ms / most).toFixed(2)}%` });
    const bw = h("span", { class: "wb-bar-bw", style: `width:${(100 * l.backward_ms / most).toFixed(2)}%` });
    return h("tr", { class: l.slowest ? "wb-layer wb-slowest" : "wb-layer", "data-layer": l.name },
      h("td", { class: "wb-layer-name", title: l.kind }, l.name),
      h("td", { class: "wb-layer-fw" }, fmt(l.forward_ms, 3)),
      h("td", { class: "wb-layer-bw" }, fmt(l.backward_ms, 3)),
      h("td", { class: "wb-layer-share" }, `${(100 * (l.forward_ms + l.backward_ms) / total).toFixed(1)}%`),
      h("td", { class: "wb-layer-bar" }, h("div", { class: "wb-hbar" }, fw, bw)));
  });
  box.replaceChildren(
    h("div", { class: "wb-section-title" }, `Time per layer (iteration ${iteration}, ms: `,
      h("span", { class: "wb-key-fw" }, "forward"), " / ", h("span", { class: "wb-key-bw" }, "backward"), ")"),
    h("table", { class: "wb-layer-table" },
      h("tr", {}, h("th", {}, "layer"), h("th", {}, "forward"), h("th", {}, "backward"),
        h("th", {}, "share"), h("th", {}, "")), ...rows));
}

// The Spark tasks: records/s, where each task's time goes (compute / all-reduce / waiting,
// per iteration), its executor; the straggler's row is highlighted.
function drawCluster(box, tasks, info) {
  box.style.display = tasks.length ? "" : "none";
  if (!tasks.length) { box.replaceChildren(); return; }
  const per = (t, k) => t[k] / Math.max(t.iterations, 1);
  const most = Math.max(...tasks.map((t) => per(t, "compute") + per(t, "allreduce") + per(t, "waiting")), 1e-9);
  const rows = tasks.map((t) => {
    const seg = (k, cls) => h("span", { class: cls, style: `width:${(100 * per(t, k) / most).toFixed(2)}%` });
    const straggler = info.straggler === t.rank;
    return h("tr", { class: straggler ? "wb-task wb-straggler" : "wb-task", "data-rank": String(t.rank) },
      h("td", {}, String(t.rank)), h("td", {}, `${t.executor} @ ${t.host}`),
      h("td", {}, String(t.attempt)),
      h("td", { class: "wb-task-rate" }, fmt(t.records_per_second, 4)),
      h("td", { class: "wb-task-compute" }, fmt(1e3 * per(t, "compute"), 3)),
      h("td", { class: "wb-task-allreduce" }, fmt(1e3 * per(t, "allreduce"), 3)),
      h("td", { class: "wb-task-waiting" }, fmt(1e3 * per(t, "waiting"), 3)),
      h("td", { class: "wb-layer-bar" }, h("div", { class: "wb-hbar" },
        seg("compute", "wb-bar-fw"), seg("allreduce", "wb-bar-ar"), seg("waiting", "wb-bar-wait"))));
  });
  box.replaceChildren(
    h("div", { class: "wb-section-title" },
      `Spark tasks (iteration ${info.iteration}; stretches ${info.stretches || 1}, restarts from a snapshot ${info.restarts || 0}; ms per iteration: `,
      h("span", { class: "wb-key-fw" }, "compute"), " / ", h("span", { class: "wb-key-ar" }, "all-reduce"),
      " / ", h("span", { class: "wb-key-wait" }, "waiting"), ")"),
    h("table", { class: "wb-task-table" },
      h("tr", {}, h("th", {}, "task"), h("th", {}, "executor"), h("th", {}, "attempt"),
        h("th", {}, "records/s"), h("th", {}, "compute"), h("th", {}, "all-reduce"),
        h("th", {}, "waiting"), h("th", {}, "")), ...rows));
}

export default { render };
