// The "Workbench" sidebar: the runs of the runs directory with status, latest metrics and a
// loss sparkline, and the hyperparameter studies with their leaders and a sparkline of every
// trial's metric per epoch; refreshed every few seconds while it is visible.
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IRun, IStudyTrial, listRuns } from './api';
import { clusterView, comparison, profileView, trialKey } from './cockpit';
import { CommandIDs } from './commands';

const REFRESH_MS = 2000;

function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !isFinite(x)) {
    return '–';
  }
  return Number(x.toPrecision(digits)).toString();
}

function ago(t: number | null | undefined): string {
  if (!t) {
    return '';
  }
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90) {
    return `${Math.round(s)} s ago`;
  }
  if (s < 5400) {
    return `${Math.round(s / 60)} min ago`;
  }
  if (s < 86400 * 2) {
    return `${Math.round(s / 3600)} h ago`;
  }
  return new Date(t * 1000).toLocaleDateString();
}

export function sparkline(points: [number, number][], width = 120, height = 28): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.classList.add('jp-Workbench-sparkline');
  svg.dataset.points = String(points.length);
  if (points.length < 2) {
    return svg;
  }
  const xs = points.map(p => p[0]);
  const ys = points.map(p => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  const px = (x: number) => ((x - x0) / (x1 - x0 || 1)) * (width - 2) + 1;
  const py = (y: number) => height - 2 - ((y - y0) / (y1 - y0 || 1)) * (height - 4);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', points.map(p => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' '));
  line.setAttribute('fill', 'none');
  svg.appendChild(line);
  return svg;
}

const TRIAL_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
  '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** One polyline per trial (its metric per epoch); the best trial drawn thicker. */
export function trialSparkline(trials: IStudyTrial[], best: number | null | undefined,
                               width = 160, height = 36): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.classList.add('jp-Workbench-sparkline', 'jp-Workbench-trialSparkline');
  const drawn = trials.filter(t => (t.reports || []).length > 0);
  svg.dataset.series = String(drawn.length);
  const all = drawn.flatMap(t => t.reports);
  svg.dataset.points = String(all.length);
  if (!all.length) {
    return svg;
  }
  const x0 = Math.min(...all.map(p => p[0]));
  const x1 = Math.max(...all.map(p => p[0]));
  const y0 = Math.min(...all.map(p => p[1]));
  const y1 = Math.max(...all.map(p => p[1]));
  const px = (x: number) => ((x - x0) / (x1 - x0 || 1)) * (width - 2) + 1;
  const py = (y: number) => height - 2 - ((y - y0) / (y1 - y0 || 1)) * (height - 4);
  for (const t of drawn) {
    const line = document.createElementNS(ns, 'polyline');
    const pts = t.reports.length === 1 ? [t.reports[0], t.reports[0]] : t.reports;
    line.setAttribute('points', pts.map(p => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' '));
    line.setAttribute('fill', 'none');
    line.style.stroke = TRIAL_COLORS[t.number % TRIAL_COLORS.length];
    line.style.strokeWidth = t.number === best ? '2.4' : '1';
    if (t.pruned) {
      line.setAttribute('stroke-dasharray', '2,2');
    }
    line.dataset.trial = String(t.number);
    svg.appendChild(line);
  }
  return svg;
}

function showParam(v: unknown): string {
  return typeof v === 'number' ? fmt(v, 3) : String(v);
}

export class RunsPanel extends Widget {
  constructor(commands: CommandRegistry) {
    super();
    this._commands = commands;
    this.id = 'workbench-runs';
    this.addClass('jp-Workbench-panel');
    this.title.caption = 'BigDL Workbench: training runs';
    const header = document.createElement('div');
    header.className = 'jp-Workbench-header';
    const title = document.createElement('span');
    title.className = 'jp-Workbench-title';
    title.textContent = 'Workbench runs';
    const tb = this._button('TensorBoard', 'Open TensorBoard on every run', () =>
      this._commands.execute(CommandIDs.openTensorBoard, {}));
    const refresh = this._button('↻', 'Refresh', () => void this.refresh());
    header.append(title, tb, refresh);
    this._where = document.createElement('div');
    this._where.className = 'jp-Workbench-where';
    this._compare = document.createElement('div');
    this._compare.className = 'jp-Workbench-compareBox';
    this._list = document.createElement('ul');
    this._list.className = 'jp-Workbench-runs';
    this.node.append(header, this._where, this._compare, this._list);
  }

  /** The runs (by name) and study trials ("study#n") picked for comparison. */
  get picked(): Set<string> {
    return this._picked;
  }

  private _pick(key: string, on: boolean): void {
    if (on) {
      this._picked.add(key);
    } else {
      this._picked.delete(key);
    }
    this._render();
  }

  private _checkbox(key: string, title: string): HTMLInputElement {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'jp-Workbench-pick';
    box.title = title;
    box.dataset.key = key;
    box.checked = this._picked.has(key);
    box.addEventListener('change', () => this._pick(key, box.checked));
    return box;
  }

  /** A collapsible section whose open state survives the refreshes. */
  private _details(key: string, label: string, body: HTMLElement): HTMLDetailsElement {
    const details = document.createElement('details');
    details.className = 'jp-Workbench-details';
    details.dataset.key = key;
    details.open = this._open.has(key);
    const summary = document.createElement('summary');
    summary.textContent = label;
    details.append(summary, body);
    details.addEventListener('toggle', () => {
      if (details.open) {
        this._open.add(key);
      } else {
        this._open.delete(key);
      }
    });
    return details;
  }

  get runs(): IRun[] {
    return this._runs;
  }

  async refresh(): Promise<void> {
    try {
      const data = await listRuns();
      this._runs = data.runs;
      this._where.textContent = `in ${data.runs_dir || '.'}`;
      this._render();
    } catch (e) {
      this._where.textContent = `cannot list runs: ${(e as Error).message}`;
    }
  }

  protected onAfterShow(msg: Message): void {
    void this.refresh();
    this._timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, REFRESH_MS);
  }

  protected onAfterHide(msg: Message): void {
    window.clearInterval(this._timer);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  private _button(label: string, title: string, onClick: () => void): HTMLButtonElement {
    const b = document.createElement('button');
    b.className = 'jp-Workbench-button';
    b.textContent = label;
    b.title = title;
    b.addEventListener('click', onClick);
    return b;
  }

  private _render(): void {
    this._list.replaceChildren();
    const names = new Set(this._runs.flatMap(r => r.kind === 'study'
      ? (r.trials || []).map(t => trialKey(r.name, t)) : [r.name]));
    for (const key of [...this._picked]) {
      if (!names.has(key)) {
        this._picked.delete(key);
      }
    }
    const compare = comparison(this._runs, this._picked);
    this._compare.replaceChildren(...(compare ? [compare] : []));
    if (!this._runs.length) {
      const empty = document.createElement('li');
      empty.className = 'jp-Workbench-empty';
      empty.textContent = 'No runs yet: train with %%bigdl_train (after %load_ext workbench).';
      this._list.append(empty);
      return;
    }
    for (const run of this._runs) {
      if (run.kind === 'study') {
        this._list.append(this._renderStudy(run));
        continue;
      }
      const li = document.createElement('li');
      li.className = 'jp-Workbench-run';
      li.dataset.run = run.name;
      li.dataset.status = run.status;
      const top = document.createElement('div');
      top.className = 'jp-Workbench-runTop';
      const name = document.createElement('span');
      name.className = 'jp-Workbench-runName';
      name.textContent = run.name;
      const status = document.createElement('span');
      status.className = `jp-Workbench-status jp-Workbench-status-${run.status}`;
      status.textContent = run.status;
      top.append(this._checkbox(run.name, `Compare ${run.name} with other runs`), name, status);
      const metrics = document.createElement('div');
      metrics.className = 'jp-Workbench-metrics';
      const parts = [];
      if (run.epoch) {
        parts.push(`epoch ${run.epoch}`);
      }
      if (run.iteration) {
        parts.push(`iter ${run.iteration}`);
      }
      parts.push(`loss ${fmt(run.loss)}`);
      for (const [k, v] of Object.entries(run.metrics || {})) {
        parts.push(`${k} ${fmt(v)}`);
      }
      metrics.textContent = parts.join(' · ');
      const when = document.createElement('div');
      when.className = 'jp-Workbench-when';
      when.textContent = run.status === 'running' ? `updated ${ago(run.updated)}` : `started ${ago(run.start_time)}`;
      const actions = document.createElement('div');
      actions.className = 'jp-Workbench-actions';
      actions.append(
        this._button('TensorBoard', `Open TensorBoard for ${run.name}`, () =>
          this._commands.execute(CommandIDs.openTensorBoard, { run: run.name })));
      if (run.spark_ui) {
        actions.append(this._button('Spark UI', `Open the Spark UI of ${run.name}`, () =>
          this._commands.execute(CommandIDs.openSparkUI, { run: run.name })));
      }
      if (run.status === 'running') {
        actions.append(this._button('Stop', `Stop ${run.name} after its current iteration`, () =>
          this._commands.execute(CommandIDs.stopRun, { run: run.name })));
      }
      li.append(top, metrics, sparkline(run.loss_series || []), when, actions);
      if (run.cluster && run.cluster.tasks && run.cluster.tasks.length) {
        const straggler = run.cluster.straggler;
        li.append(this._details(`${run.name}/cluster`,
          `Spark tasks (${run.cluster.tasks.length})` +
          (straggler !== null && straggler !== undefined ? ` · straggler: task ${straggler}` : ''),
          clusterView(run.cluster)));
      }
      if (run.profile && run.profile.layers && run.profile.layers.length) {
        const leaves = run.profile.layers.filter(l => l.leaf);
        const slow = leaves.reduce((a, b) => (b.forward + b.backward > a.forward + a.backward ? b : a), leaves[0]);
        li.append(this._details(`${run.name}/profile`,
          `Time per layer · slowest: ${slow ? slow.name : '–'}`, profileView(run.profile)));
      }
      if (run.error) {
        const err = document.createElement('div');
        err.className = 'jp-Workbench-error';
        err.textContent = run.error;
        li.append(err);
      }
      this._list.append(li);
    }
  }

  private _renderStudy(run: IRun): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'jp-Workbench-run jp-Workbench-study';
    li.dataset.run = run.name;
    li.dataset.kind = 'study';
    li.dataset.status = run.status;
    const top = document.createElement('div');
    top.className = 'jp-Workbench-runTop';
    const name = document.createElement('span');
    name.className = 'jp-Workbench-runName';
    name.textContent = run.name;
    const kind = document.createElement('span');
    kind.className = 'jp-Workbench-kind';
    kind.textContent = 'study';
    const status = document.createElement('span');
    status.className = `jp-Workbench-status jp-Workbench-status-${run.status}`;
    status.textContent = run.status;
    top.append(name, kind, status);
    const metrics = document.createElement('div');
    metrics.className = 'jp-Workbench-metrics';
    const parts = [`trials ${run.trials_done ?? 0}/${run.n_trials ?? '?'}`];
    if (run.trials_running) {
      parts.push(`${run.trials_running} running`);
    }
    if (run.trials_pruned) {
      parts.push(`${run.trials_pruned} pruned`);
    }
    if (run.trials_failed) {
      parts.push(`${run.trials_failed} failed`);
    }
    parts.push(`best ${run.metric || 'value'} ${fmt(run.best_value)}` +
               (run.best !== null && run.best !== undefined ? ` (trial ${run.best})` : ''));
    metrics.textContent = parts.join(' · ');
    // Every trial, ranked: completed trials by their final value (the study's best is the best
    // completed one), then the others by their best value so far.
    const sign = run.mode === 'min' ? 1 : -1;
    const score = (t: IStudyTrial) =>
      t.status === 'completed' && t.value !== null && t.value !== undefined ? t.value : t.best_value;
    const group = (t: IStudyTrial) => (t.status === 'completed' ? 0 : t.status === 'running' ? 1 : 2);
    const leaders = (run.trials || []).filter(t => score(t) !== null)
      .sort((a, b) => group(a) - group(b) || sign * ((score(a) as number) - (score(b) as number)));
    const table = document.createElement('table');
    table.className = 'jp-Workbench-leaderboard';
    for (const t of leaders) {
      const tr = document.createElement('tr');
      tr.dataset.trial = String(t.number);
      if (t.number === run.best) {
        tr.className = 'jp-Workbench-best';
      }
      const pick = document.createElement('td');
      pick.append(this._checkbox(trialKey(run.name, t), `Compare trial ${t.number}`));
      tr.append(pick);
      // the value the trials are ranked by: a completed trial's final value (what makes the
      // study's best), else its best so far
      const cells = [`#${t.number}`, fmt(score(t)), t.status,
                     Object.entries(t.params || {}).map(([k, v]) => `${k}=${showParam(v)}`).join(' ')];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (i === 1) {
          td.className = 'jp-Workbench-score';
          td.title = t.status === 'completed' ? 'final value' : 'best so far';
        }
        tr.append(td);
      });
      table.append(tr);
    }
    const when = document.createElement('div');
    when.className = 'jp-Workbench-when';
    when.textContent = run.status === 'running' ? `updated ${ago(run.updated)}` : `started ${ago(run.start_time)}`;
    const actions = document.createElement('div');
    actions.className = 'jp-Workbench-actions';
    actions.append(
      this._button('TensorBoard', `Open TensorBoard (HParams) for ${run.name}`, () =>
        this._commands.execute(CommandIDs.openTensorBoard, { run: run.name })));
    if (run.status === 'running') {
      actions.append(this._button('Stop', `Stop ${run.name}: no new trials`, () =>
        this._commands.execute(CommandIDs.stopRun, { run: run.name })));
    }
    li.append(top, metrics, trialSparkline(run.trials || [], run.best), table, when, actions);
    return li;
  }

  private _commands: CommandRegistry;
  private _runs: IRun[] = [];
  private _list: HTMLUListElement;
  private _compare: HTMLDivElement;
  private _picked = new Set<string>();
  private _open = new Set<string>();
  private _where: HTMLDivElement;
  private _timer = -1;
}
