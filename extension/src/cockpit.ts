// The cockpit views of the Workbench sidebar, drawn from the run records the server serves
// (the same files the training loop's listeners write, so they work after a kernel restart):
// a run's time per layer and its Spark tasks, and the comparison of the runs and trials the
// user picks (their curves overlaid, their hyperparameters side by side).
import { ICluster, IProfile, IRun, IStudyTrial } from './api';

const NS = 'http://www.w3.org/2000/svg';
export const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
  '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text) {
    e.textContent = text;
  }
  return e;
}

function num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !isFinite(x)) {
    return '–';
  }
  return Number(x.toPrecision(digits)).toString();
}

function bar(parts: [number, string][], most: number): HTMLDivElement {
  const track = el('div', 'jp-Workbench-hbar');
  for (const [value, cls] of parts) {
    const seg = el('span', cls);
    seg.style.width = `${((100 * value) / (most || 1)).toFixed(2)}%`;
    track.append(seg);
  }
  return track;
}

/** The last sampled profile: one row per leaf layer, forward + backward ms, slowest marked. */
export function profileView(profile: IProfile): HTMLDivElement {
  const box = el('div', 'jp-Workbench-profile');
  box.dataset.iteration = String(profile.iteration);
  const leaves = profile.layers.filter(l => l.leaf);
  const total = (l: { forward: number; backward: number }) => l.forward + l.backward;
  const most = Math.max(...leaves.map(total), 1e-12);
  const slowest = leaves.reduce((a, b) => (total(b) > total(a) ? b : a), leaves[0]);
  box.append(el('div', 'jp-Workbench-sectionTitle',
                `Time per layer, iteration ${profile.iteration} (${profile.source}), ms fwd / bwd`));
  const table = el('table', 'jp-Workbench-layerTable');
  for (const l of leaves) {
    const tr = el('tr', l === slowest ? 'jp-Workbench-layer jp-Workbench-slowest' : 'jp-Workbench-layer');
    tr.dataset.layer = l.name;
    tr.title = l.kind;
    const name = el('td', 'jp-Workbench-layerName', l.name);
    const fw = el('td', 'jp-Workbench-fw', num(1e3 * l.forward));
    const bw = el('td', 'jp-Workbench-bw', num(1e3 * l.backward));
    const b = el('td', 'jp-Workbench-barCell');
    b.append(bar([[l.forward, 'jp-Workbench-segFw'], [l.backward, 'jp-Workbench-segBw']], most));
    tr.append(name, fw, bw, b);
    table.append(tr);
  }
  box.append(table);
  return box;
}

/** The Spark tasks: records/s, ms per iteration in compute / all-reduce / waiting, executor;
 * the straggler's row is marked. */
export function clusterView(cluster: ICluster): HTMLDivElement {
  const box = el('div', 'jp-Workbench-cluster');
  box.dataset.iteration = String(cluster.iteration);
  const per = (t: { iterations: number }, v: number) => v / Math.max(t.iterations, 1);
  const most = Math.max(...cluster.tasks.map(t => per(t, t.compute + t.allreduce + t.waiting)), 1e-12);
  const title = `Spark tasks at iteration ${cluster.iteration}: ${cluster.stretches} stretch(es), ` +
    `${cluster.restarts} restart(s) from a snapshot; ms/iteration compute / all-reduce / waiting`;
  box.append(el('div', 'jp-Workbench-sectionTitle', title));
  if (cluster.last_error) {
    box.append(el('div', 'jp-Workbench-error', `last failure: ${cluster.last_error}`));
  }
  const table = el('table', 'jp-Workbench-taskTable');
  const head = el('tr');
  for (const h of ['task', 'executor', 'try', 'rec/s', 'comp', 'a-r', 'wait', '']) {
    head.append(el('th', '', h));
  }
  table.append(head);
  for (const t of cluster.tasks) {
    const straggler = cluster.straggler === t.rank;
    const tr = el('tr', straggler ? 'jp-Workbench-task jp-Workbench-straggler' : 'jp-Workbench-task');
    tr.dataset.rank = String(t.rank);
    tr.title = `${t.executor} on ${t.host}${straggler ? ' (straggler)' : ''}`;
    tr.append(el('td', '', String(t.rank)), el('td', 'jp-Workbench-executor', t.executor),
              el('td', '', String(t.attempt)),
              el('td', 'jp-Workbench-rate', num(t.records_per_second, 4)),
              el('td', 'jp-Workbench-compute', num(1e3 * per(t, t.compute))),
              el('td', 'jp-Workbench-allreduce', num(1e3 * per(t, t.allreduce))),
              el('td', 'jp-Workbench-waiting', num(1e3 * per(t, t.waiting))));
    const b = el('td', 'jp-Workbench-barCell');
    b.append(bar([[per(t, t.compute), 'jp-Workbench-segFw'], [per(t, t.allreduce), 'jp-Workbench-segAr'],
                  [per(t, t.waiting), 'jp-Workbench-segWait']], most));
    tr.append(b);
    table.append(tr);
  }
  box.append(table);
  return box;
}

export interface ISeries {
  key: string;
  label: string;
  points: [number, number][];
}

/** Several series overlaid on shared axes, with a legend; x: iteration or epoch. */
export function overlayChart(series: ISeries[], title: string, xLabel: string,
                             width = 260, height = 130): HTMLDivElement {
  const box = el('div', 'jp-Workbench-overlay');
  box.append(el('div', 'jp-Workbench-sectionTitle', title));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.classList.add('jp-Workbench-overlayChart');
  const all = series.flatMap(s => s.points);
  svg.dataset.series = String(series.filter(s => s.points.length).length);
  svg.dataset.points = String(all.length);
  box.append(svg);
  if (!all.length) {
    return box;
  }
  const pad = { l: 34, r: 4, t: 4, b: 14 };
  const x0 = Math.min(...all.map(p => p[0]));
  const x1 = Math.max(...all.map(p => p[0]));
  const y0 = Math.min(...all.map(p => p[1]));
  const y1 = Math.max(...all.map(p => p[1]));
  const px = (x: number) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
  const py = (y: number) => height - pad.b - ((y - y0) / (y1 - y0 || 1)) * (height - pad.t - pad.b);
  const text = (x: number, y: number, s: string, anchor: string) => {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', String(x));
    t.setAttribute('y', String(y));
    t.setAttribute('text-anchor', anchor);
    t.setAttribute('class', 'jp-Workbench-tick');
    t.textContent = s;
    svg.appendChild(t);
  };
  text(pad.l - 2, pad.t + 8, num(y1), 'end');
  text(pad.l - 2, height - pad.b, num(y0), 'end');
  text(pad.l, height - 2, num(x0), 'start');
  text(width - pad.r, height - 2, `${num(x1)} ${xLabel}`, 'end');
  series.forEach((s, i) => {
    if (!s.points.length) {
      return;
    }
    const line = document.createElementNS(NS, 'polyline');
    const pts = s.points.length === 1 ? [s.points[0], s.points[0]] : s.points;
    line.setAttribute('points', pts.map(p => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' '));
    line.setAttribute('fill', 'none');
    line.style.stroke = COLORS[i % COLORS.length];
    line.style.strokeWidth = '1.4';
    line.dataset.key = s.key;
    line.dataset.points = String(s.points.length);
    svg.appendChild(line);
  });
  const legend = el('div', 'jp-Workbench-legend');
  series.forEach((s, i) => {
    const item = el('span', 'jp-Workbench-legendItem');
    const swatch = el('span', 'jp-Workbench-swatch');
    swatch.style.background = COLORS[i % COLORS.length];
    item.append(swatch, document.createTextNode(s.label));
    legend.append(item);
  });
  box.append(legend);
  return box;
}

function show(v: unknown): string {
  if (v === undefined) {
    return '';
  }
  if (typeof v === 'number') {
    return num(v, 4);
  }
  return v === null ? 'None' : String(v);
}

export interface IPicked {
  key: string;
  label: string;
  params: { [name: string]: unknown };
}

/** Hyperparameters side by side: one row per name, the rows that differ first and marked. */
export function hparamDiff(picked: IPicked[]): HTMLTableElement {
  const table = el('table', 'jp-Workbench-hparams');
  const head = el('tr');
  head.append(el('th', '', 'hyperparameter'));
  for (const p of picked) {
    head.append(el('th', '', p.label));
  }
  table.append(head);
  const names: string[] = [];
  for (const p of picked) {
    for (const k of Object.keys(p.params)) {
      if (!names.includes(k)) {
        names.push(k);
      }
    }
  }
  const differs = (k: string) => new Set(picked.map(p => JSON.stringify(p.params[k] ?? null))).size > 1;
  const ordered = [...names.filter(differs), ...names.filter(k => !differs(k))];
  for (const k of ordered) {
    const tr = el('tr', differs(k) ? 'jp-Workbench-hparam jp-Workbench-diff' : 'jp-Workbench-hparam');
    tr.dataset.name = k;
    tr.append(el('td', 'jp-Workbench-hparamName', k));
    for (const p of picked) {
      tr.append(el('td', '', show(p.params[k])));
    }
    table.append(tr);
  }
  return table;
}

/** The key of a study's trial in the comparison. */
export function trialKey(study: string, trial: IStudyTrial): string {
  return `${study}#${trial.number}`;
}

/** The comparison of the picked runs and trials, or null when fewer than one is picked. */
export function comparison(runs: IRun[], picked: Set<string>): HTMLDivElement | null {
  const chosenRuns = runs.filter(r => r.kind !== 'study' && picked.has(r.name));
  const chosenTrials: { study: IRun; trial: IStudyTrial }[] = [];
  for (const study of runs.filter(r => r.kind === 'study')) {
    for (const trial of study.trials || []) {
      if (picked.has(trialKey(study.name, trial))) {
        chosenTrials.push({ study, trial });
      }
    }
  }
  if (!chosenRuns.length && !chosenTrials.length) {
    return null;
  }
  const box = el('div', 'jp-Workbench-compare');
  box.dataset.count = String(chosenRuns.length + chosenTrials.length);
  box.append(el('div', 'jp-Workbench-title', 'Compare'));
  if (chosenRuns.length) {
    box.append(overlayChart(chosenRuns.map(r => ({ key: r.name, label: r.name, points: r.loss_series || [] })),
                            'training loss', 'iter'));
  }
  if (chosenTrials.length) {
    const metric = chosenTrials[0].study.metric || 'value';
    box.append(overlayChart(chosenTrials.map(({ study, trial }) => ({
      key: trialKey(study.name, trial), label: `${study.name} #${trial.number}`, points: trial.reports || []
    })), `validation ${metric} per epoch`, 'epoch'));
  }
  const rows: IPicked[] = [
    ...chosenRuns.map(r => ({
      key: r.name, label: r.name,
      params: { ...(r.hparams || {}), 'result: loss': r.loss ?? null,
                ...Object.fromEntries(Object.entries(r.metrics || {}).map(([k, v]) => [`result: ${k}`, v])) }
    })),
    ...chosenTrials.map(({ study, trial }) => ({
      key: trialKey(study.name, trial), label: `${study.name} #${trial.number}`,
      params: { ...(trial.params || {}), [`result: final ${study.metric || 'value'}`]: trial.value ?? null,
                [`result: peak ${study.metric || 'value'}`]: trial.best_value }
    }))
  ];
  box.append(hparamDiff(rows));
  return box;
}
