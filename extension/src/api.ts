// The REST client of the server extension (workbench.server): <base_url>workbench/api/...
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IStudyTrial {
  number: number;
  status: string;
  best_value: number | null;
  value?: number | null;
  pruned: boolean;
  params: { [name: string]: unknown };
  elapsed: number | null;
  error?: string | null;
  reports: [number, number][];
}

export interface IRun {
  name: string;
  /** "study" for a hyperparameter study (workbench.tune); absent for a training run. */
  kind?: string;
  metric?: string | null;
  mode?: string | null;
  n_trials?: number | null;
  trials_done?: number;
  trials_running?: number;
  trials_pruned?: number;
  trials_failed?: number;
  best?: number | null;
  best_value?: number | null;
  best_params?: { [name: string]: unknown } | null;
  trials?: IStudyTrial[];
  status: string;
  start_time?: number | null;
  end_time?: number | null;
  updated?: number | null;
  epoch?: number | null;
  iteration?: number | null;
  loss?: number | null;
  throughput?: number | null;
  lr?: number | null;
  metrics?: { [name: string]: number | null };
  loss_series?: [number, number][];
  spark_ui?: string | null;
  error?: string | null;
  log_dir: string;
  /** Flat hyperparameters (optim method and its arguments, batch size, trigger, ...). */
  hparams?: { [name: string]: unknown };
  /** The last sampled per-layer profile (Optimizer.set_profile). */
  profile?: IProfile | null;
  /** The Spark tasks' last reports (the cluster view). */
  cluster?: ICluster | null;
}

export interface ILayerTime {
  path: string;
  depth: number;
  name: string;
  kind: string;
  forward: number;
  backward: number;
  leaf: boolean;
}

export interface IProfile {
  epoch: number;
  iteration: number;
  wall_time: number;
  source: string;
  layers: ILayerTime[];
}

export interface ITaskStats {
  rank: number;
  executor: string;
  host: string;
  attempt: number;
  iterations: number;
  records: number;
  compute: number;
  allreduce: number;
  waiting: number;
  seconds: number;
  records_per_second: number;
}

export interface ICluster {
  epoch: number;
  iteration: number;
  wall_time: number;
  stretches: number;
  restarts: number;
  last_error: string | null;
  straggler: number | null;
  tasks: ITaskStats[];
  series?: { [rank: string]: [number, number][] };
}

export interface IRuns {
  runs_dir: string;
  runs: IRun[];
}

export interface ITensorBoard {
  run: string | null;
  port: number;
  path: string;
}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench/api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data.message || text);
  }
  return data as T;
}

export function listRuns(): Promise<IRuns> {
  return request<IRuns>('runs');
}

export function startTensorBoard(run: string | null): Promise<ITensorBoard> {
  const path = run ? `runs/${encodeURIComponent(run)}/tensorboard` : 'tensorboard';
  return request<ITensorBoard>(path, { method: 'POST' });
}

export function stopRun(run: string): Promise<unknown> {
  return request(`runs/${encodeURIComponent(run)}/stop`, { method: 'POST' });
}

export function tutorials(): Promise<{ folder: string; notebooks: string[] }> {
  return request('tutorials');
}

export function config(): Promise<{ runs_dir: string; spark_ui_url: string }> {
  return request('config');
}

/** The URL under the Jupyter server that proxies to a local port (jupyter-server-proxy). */
export function proxyUrl(port: number): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'proxy', String(port)) + '/';
}
