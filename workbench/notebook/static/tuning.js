// The hyperparameter-tuning board (anywidget ESM: no build step).  The controls edit the
// `controls` trait (one entry per parameter: kind, bounds, on/off and its distribution as
// tune.space_to_dict writes it); Run and Stop are messages to the Python TuningBoard, which
// sends the trials back (throttled).  (h, s, fmt, duration, drawChart, interruptKernel come
// from common.js, prepended by the Python side.)

const TRIAL_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function copy(x) { return JSON.parse(JSON.stringify(x)); }

function show(v) {
  if (typeof v === "number") return fmt(v, 4);
  if (v === null || v === undefined) return "–";
  return String(v);
}

// Two handles of one range: a slider each (on a log10 scale for `log`) and a number box each.
function rangeEditor(name, c, commit, disabled) {
  const log = c.kind === "log";
  const toPos = (v) => (log ? Math.log10(v) : v);
  const fromPos = (p) => (log ? Math.pow(10, p) : p);
  const lo = toPos(c.min), hi = toPos(c.max);
  const step = c.kind === "int" ? c.step || 1 : log ? 0.01 : (hi - lo) / 100;
  const box = h("span", { class: "wb-range" });
  const make = (which) => {
    const value = c.dist[which === "lo" ? "low" : "high"];
    const slider = h("input", { type: "range", class: `wb-${which}`, min: String(lo), max: String(hi),
                                step: String(step), value: String(toPos(value)),
                                "aria-label": `${name} ${which === "lo" ? "low" : "high"}` });
    const num = h("input", { type: "number", class: `wb-${which}-num`, step: c.kind === "int" ? String(step) : "any",
                             value: String(value), "aria-label": `${name} ${which === "lo" ? "low" : "high"} value` });
    slider.disabled = num.disabled = disabled;
    slider.addEventListener("input", () => { num.value = String(Number(fromPos(Number(slider.value)).toPrecision(3))); });
    slider.addEventListener("change", () => commit(which, Number(num.value)));
    num.addEventListener("change", () => commit(which, Number(num.value)));
    return [slider, num];
  };
  const [ls, ln] = make("lo"), [hs, hn] = make("hi");
  box.append(ln, ls, h("span", { class: "wb-dash" }, "to"), hs, hn);
  if (log) box.append(h("span", { class: "wb-hint" }, "log scale"));
  if (c.kind === "int" && (c.step || 1) > 1) box.append(h("span", { class: "wb-hint" }, `step ${c.step}`));
  return box;
}

function render({ model, el }) {
  const root = h("div", { class: "wb-dashboard wb-tuning" });
  const title = h("span", { class: "wb-title" });
  const status = h("span", { class: "wb-status" });
  const run = h("button", { class: "wb-run", type: "button", title: "Run a study with these settings" }, "▶ Run");
  const stop = h("button", { class: "wb-stop wb-tune-stop", type: "button", title: "Stop the study: no new trials; running ones stop at their next report" }, "■ Stop");
  const header = h("div", { class: "wb-header" }, title, status, run, stop);
  const controlsTable = h("table", { class: "wb-controls" });
  const settings = h("div", { class: "wb-settings" });
  const stats = h("div", { class: "wb-stats" });
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-chart-svg" });
  const chartBox = h("div", { class: "wb-chart wb-chart-trials" }, svg);
  const board = h("table", { class: "wb-leaderboard" });
  const boardBox = h("div", { class: "wb-leaderboard-box" }, board);
  const message = h("div", { class: "wb-message" });
  const summary = h("table", { class: "wb-summary" });
  root.append(header, controlsTable, settings, stats, h("div", { class: "wb-charts" }, chartBox, summary),
              boardBox, message);
  el.append(root);

  let frame = null;
  const running = () => ["running", "stopping"].includes(model.get("status"));

  function setControl(name, change) {
    const controls = copy(model.get("controls"));
    change(controls[name]);
    model.set("controls", controls);
    model.save_changes();
  }

  function commitRange(name, which, value) {
    const c = model.get("controls")[name];
    const dist = copy(c.dist);
    let ok = Number.isFinite(value);
    if (ok) {
      if (c.kind === "int") value = Math.round(value);
      dist[which === "lo" ? "low" : "high"] = value;
      if (dist.low > dist.high) [dist.low, dist.high] = [dist.high, dist.low];
      if (c.kind === "int") {
        const step = dist.step || 1;
        dist.high = dist.low + Math.round((dist.high - dist.low) / step) * step;
      } else {
        ok = dist.low < dist.high && (c.kind !== "log" || dist.low > 0);
      }
    }
    if (!ok) { drawControls(); return; }   // an empty or reversed range: keep the old one
    setControl(name, (x) => { x.dist = dist; x.on = true; });
  }

  function drawControls() {
    const controls = model.get("controls") || {};
    const disabled = running();
    const rows = [];
    for (const [name, c] of Object.entries(controls)) {
      const use = h("input", { type: "checkbox", class: "wb-use", title: `tune ${name}` });
      use.checked = !!c.on;
      use.disabled = disabled || c.kind === "fixed";
      use.addEventListener("change", () => setControl(name, (x) => { x.on = use.checked; }));
      let editor;
      if (c.kind === "log" || c.kind === "float" || c.kind === "int") {
        editor = rangeEditor(name, c, (which, v) => commitRange(name, which, v), disabled);
      } else if (c.kind === "choice") {
        editor = h("span", { class: "wb-choices" });
        const chosen = c.dist.options.map((o) => JSON.stringify(o));
        for (const option of c.options) {
          const on = chosen.includes(JSON.stringify(option));
          const b = h("button", { type: "button", class: `wb-choice${on ? " wb-on" : ""}`,
                                  "aria-pressed": String(on), "data-value": String(option) }, String(option));
          b.disabled = disabled;
          b.addEventListener("click", () => {
            const next = c.options.filter((o) => {
              const k = JSON.stringify(o);
              return k === JSON.stringify(option) ? !on : chosen.includes(k);
            });
            if (!next.length) return;  // a choice needs at least one option
            setControl(name, (x) => { x.dist = { type: "choice", options: next }; x.on = true; });
          });
          editor.append(b);
        }
      } else {
        editor = h("code", { class: "wb-fixed" }, JSON.stringify(c.dist));
      }
      const tr = h("tr", { class: `wb-control${c.on ? "" : " wb-off"}`, "data-name": name, "data-kind": c.kind },
                   h("td", {}, use), h("th", {}, name), h("td", {}, editor));
      rows.push(tr);
    }
    controlsTable.replaceChildren(...rows);
  }

  function drawSettings() {
    const disabled = running();
    const number = (key, label, min) => {
      const input = h("input", { type: "number", class: `wb-${key.replace("_", "-")}`, min: String(min), step: "1",
                                 value: String(model.get(key)), "aria-label": label });
      input.disabled = disabled;
      input.addEventListener("change", () => {
        const v = Math.round(Number(input.value));
        if (Number.isFinite(v) && v >= min) { model.set(key, v); model.save_changes(); }
        else input.value = String(model.get(key));
      });
      return h("label", {}, `${label} `, input);
    };
    const select = (key, label, options) => {
      const sel = h("select", { class: `wb-${key}`, "aria-label": label });
      for (const o of options) {
        const opt = h("option", { value: o }, o);
        if (o === model.get(key)) opt.selected = true;
        sel.append(opt);
      }
      sel.disabled = disabled;
      sel.addEventListener("change", () => { model.set(key, sel.value); model.save_changes(); });
      return h("label", {}, `${label} `, sel);
    };
    const items = [number("n_trials", "trials", 1), number("parallelism", "parallelism", 1),
                   select("algo", "algorithm", ["tpe", "random", "grid"]),
                   select("pruner", "pruner", ["median", "asha", "none"])];
    if (model.get("epochs") > 0) items.push(number("epochs", "epochs", 1));
    items.push(h("span", { class: "wb-hint" }, `${model.get("mode") === "min" ? "minimize" : "maximize"} ${model.get("metric")}`));
    settings.replaceChildren(...items);
  }

  // Completed trials first, by their final value (the study's best trial is the best
  // completed one), then running ones, then pruned / stopped ones by their best value so far.
  const score = (t) => (t.status === "completed" && t.value !== null ? t.value : t.best_value);
  function ranked(trials) {
    const sign = model.get("mode") === "min" ? 1 : -1;
    const group = (t) => (t.status === "completed" ? 0 : t.status === "running" ? 1
                          : t.status === "pruned" || t.status === "stopped" ? 2 : 3);
    return [...trials].sort((a, b) => {
      const ga = group(a), gb = group(b);
      if (ga !== gb) return ga - gb;
      const av = score(a), bv = score(b);
      if (av === null && bv === null) return a.number - b.number;
      if (av === null) return 1;
      if (bv === null) return -1;
      return sign * (av - bv) || a.number - b.number;
    });
  }

  function drawBoard() {
    const trials = model.get("trials") || [];
    const best = model.get("best"), leader = model.get("leader");
    const names = Object.keys(model.get("controls") || {}).filter((k) => trials.some((t) => k in (t.params || {})));
    for (const t of trials) for (const k of Object.keys(t.params || {})) if (!names.includes(k)) names.push(k);
    // The column the rows are ranked by comes first and says so: a completed trial's final
    // value (the study's best trial is the best completed one: its model is the final one),
    // else the best value so far.  The peak over the epochs is shown apart, never as "best".
    const metric = model.get("metric");
    const head = h("tr", {}, h("th", {}, "#"), h("th", {}, "trial"), ...names.map((k) => h("th", {}, k)),
                   h("th", {}, "status"),
                   h("th", { class: "wb-rank-col", title: "ranked by: the final value of a completed trial, else its best so far" },
                     `${metric} ${model.get("mode") === "min" ? "▲" : "▼"}`),
                   h("th", { title: "the best value any epoch reported" }, `peak ${metric}`), h("th", {}, "epochs"),
                   h("th", {}, "elapsed"), h("th", {}, "pruned"));
    const rows = ranked(trials).map((t, i) => {
      let cls = `wb-trial wb-row-${t.status}`;
      if (t.number === best) cls += " wb-best";
      else if (best < 0 && t.number === leader) cls += " wb-leader";
      const tr = h("tr", { class: cls, "data-trial": String(t.number), "data-status": t.status },
                   h("td", {}, String(i + 1)),
                   h("td", {}, h("span", { class: "wb-swatch", style: `background:${TRIAL_COLORS[t.number % TRIAL_COLORS.length]}` }),
                     String(t.number)),
                   ...names.map((k) => h("td", {}, show((t.params || {})[k]))),
                   h("td", { class: "wb-trial-status" }, t.status),
                   h("td", { class: "wb-trial-final wb-trial-score",
                             title: t.status === "completed" ? "final value" : "best so far" },
                     show(score(t))),
                   h("td", { class: "wb-trial-best" }, show(t.best_value)),
                   h("td", {}, String((t.reports || []).length)),
                   h("td", {}, duration(t.elapsed)),
                   h("td", { class: "wb-trial-pruned" }, t.pruned ? "pruned" : ""));
      if (t.error) tr.title = t.error;
      return tr;
    });
    board.replaceChildren(h("thead", {}, head), h("tbody", {}, ...rows));
    board.dataset.rows = String(trials.length);
    const series = [...trials].sort((a, b) => a.number - b.number).map((t) => ({
      name: `trial ${t.number}`, points: t.reports || [],
      color: TRIAL_COLORS[t.number % TRIAL_COLORS.length],
      width: t.number === best ? 3 : t.number === leader && best < 0 ? 2.2 : 1.3,
      dash: t.pruned || t.status === "stopped" ? "3,2" : null, cls: t.number === best ? "wb-line-best" : "" }));
    const points = drawChart(svg, series, `validation ${model.get("metric")} per epoch`,
                             { xLabel: "epoch", empty: "no reports yet", legend: false });
    chartBox.dataset.points = String(points);
    chartBox.dataset.series = String(series.filter((d) => d.points.length).length);
    const done = trials.filter((t) => !["running", "queued"].includes(t.status)).length;
    const pruned = trials.filter((t) => t.pruned).length;
    const active = trials.filter((t) => t.status === "running").length;
    const top = trials.find((t) => t.number === (best >= 0 ? best : leader));
    stats.replaceChildren(
      h("span", {}, h("b", {}, "trials "), `${done} / ${model.get("n_trials")} done`),
      h("span", {}, h("b", {}, "running "), String(active)),
      h("span", {}, h("b", {}, "pruned "), String(pruned)),
      h("span", { class: "wb-best-so-far" }, h("b", {}, `best ${model.get("metric")} `),
        top ? `${show(score(top))} (trial ${top.number})` : "–"),
      h("span", {}, h("b", {}, "elapsed "), duration(model.get("elapsed"))));
  }

  function draw() {
    frame = null;
    const st = model.get("status");
    title.textContent = model.get("title") ? `Tuning ${model.get("title")}` : "Hyperparameter tuning";
    status.textContent = st;
    status.className = `wb-status wb-status-${st}`;
    root.dataset.status = st;
    const busy = running();
    run.disabled = busy;
    if (!busy) stopper.sent = false;
    stop.disabled = !busy || stopper.sent || st === "stopping";
    stop.textContent = st === "stopping" || stopper.sent && busy ? "stopping…" : "■ Stop";
    drawControls();
    drawSettings();
    drawBoard();
    message.textContent = model.get("message");
    message.style.display = model.get("message") ? "" : "none";
    const rows = model.get("summary") || [];
    summary.replaceChildren(...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
    summary.style.display = rows.length ? "" : "none";
  }

  run.addEventListener("click", () => {
    if (running()) return;
    run.disabled = true;
    model.send({ type: "run" });
  });
  const stopper = wireStop(model, stop);

  const schedule = () => { if (frame === null) frame = requestAnimationFrame(draw); };
  const keys = ["title", "controls", "n_trials", "parallelism", "algo", "pruner", "epochs", "metric",
                "mode", "status", "message", "trials", "leader", "best", "best_value", "elapsed", "summary"];
  for (const k of keys) model.on(`change:${k}`, schedule);
  draw();
  return () => {
    for (const k of keys) model.off(`change:${k}`, schedule);
    stopper.dispose();
    if (frame !== null) cancelAnimationFrame(frame);
  };
}

export default { render };
