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
  root.append(header, progress, stats, charts, message, summary);
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
    stopper.dispose();
    if (frame !== null) cancelAnimationFrame(frame);
  };
}

export default { render };
