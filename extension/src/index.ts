// BigDL Workbench for JupyterLab: one plugin per feature; commands are registered once and
// reused by the sidebar, the command palette and the launcher.
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IFrame,
  MainAreaWidget,
  Notification
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { IRun, proxyUrl, request, startTensorBoard, stopRun, tutorials } from './api';
import { CommandIDs } from './commands';
import { RunsPanel } from './panel';

const CATEGORY = 'BigDL Workbench';

export const workbenchIcon = new LabIcon({
  name: 'bigdl-workbench:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 19h18v2H3zM5 10h3v8H5zm5.5-5h3v13h-3zM16 13h3v5h-3z"/></g></svg>'
});

let panel: RunsPanel | null = null;

function openFrame(app: JupyterFrontEnd, id: string, label: string, url: string): void {
  const existing = Array.from(app.shell.widgets('main')).find(w => w.id === id);
  if (existing) {
    app.shell.activateById(id);
    return;
  }
  const frame = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups', 'allow-downloads']
  });
  frame.url = url;
  frame.addClass('jp-Workbench-frame');
  const widget = new MainAreaWidget({ content: frame });
  widget.id = id;
  widget.title.label = label;
  widget.title.icon = workbenchIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
}

const runsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'bigdl-workbench:runs',
  description: 'The Workbench sidebar: training runs with status, metrics and sparklines.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    panel = new RunsPanel(app.commands);
    panel.title.icon = workbenchIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'workbench-runs');
    }
    app.commands.addCommand(CommandIDs.showRuns, {
      label: 'Show Workbench Runs',
      caption: 'Show the training runs in the left sidebar',
      icon: workbenchIcon,
      execute: () => {
        app.shell.activateById('workbench-runs');
        return panel?.refresh();
      }
    });
    app.commands.addCommand(CommandIDs.refreshRuns, {
      label: 'Refresh Workbench Runs',
      execute: () => panel?.refresh()
    });
    app.commands.addCommand(CommandIDs.stopRun, {
      label: args => (args.run ? `Stop Run ${args.run}` : 'Stop Run'),
      execute: async args => {
        const run = args.run as string;
        await stopRun(run);
        Notification.info(`Asked ${run} to stop after its current iteration.`, { autoClose: 3000 });
        return panel?.refresh();
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.showRuns, category: CATEGORY });
      palette.addItem({ command: CommandIDs.refreshRuns, category: CATEGORY });
    }
  }
};

const tabsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'bigdl-workbench:tabs',
  description: 'Open TensorBoard and the Spark UI as main-area tabs.',
  autoStart: true,
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null) => {
    app.commands.addCommand(CommandIDs.openTensorBoard, {
      label: args => (args.run ? `Open TensorBoard for ${args.run}` : 'Open TensorBoard'),
      caption: 'Open TensorBoard (all runs, or one run) in a main-area tab',
      icon: workbenchIcon,
      execute: async args => {
        const run = (args.run as string) || null;
        try {
          const tb = await startTensorBoard(run);
          openFrame(app, `workbench-tensorboard-${run || 'all'}`,
                    run ? `TensorBoard: ${run}` : 'TensorBoard', proxyUrl(tb.port));
        } catch (e) {
          Notification.error(`TensorBoard did not start: ${(e as Error).message}`);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openSparkUI, {
      label: args => (args.run ? `Open Spark UI of ${args.run}` : 'Open Spark UI'),
      caption: 'Open the Spark UI of a run trained on Spark',
      execute: async args => {
        let url = '';
        try {
          if (args.run) {
            const run = await request<IRun>(`runs/${encodeURIComponent(args.run as string)}`);
            url = run.spark_ui || '';
          } else {
            const runs = panel?.runs.length ? panel.runs : (await request<{ runs: IRun[] }>('runs')).runs;
            url = runs.find(r => r.spark_ui)?.spark_ui || '';
            if (!url) {
              url = (await request<{ spark_ui_url: string }>('config')).spark_ui_url;
            }
          }
        } catch (e) {
          Notification.error(`Cannot read the runs: ${(e as Error).message}`);
          return;
        }
        if (!url) {
          Notification.warning('No Spark UI: no run has trained on Spark yet (use %%bigdl_train --master ...).');
          return;
        }
        // The driver runs in the kernel, on the Jupyter server's machine: reach its UI
        // through jupyter-server-proxy, so it works behind a remote JupyterLab too.
        const port = new URL(url).port || '4040';
        openFrame(app, `workbench-sparkui-${port}`, `Spark UI :${port}`,
                  proxyUrl(Number(port)) + 'jobs/');
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.openTensorBoard, category: CATEGORY });
      palette.addItem({ command: CommandIDs.openSparkUI, category: CATEGORY });
    }
  }
};

const tutorialsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'bigdl-workbench:tutorials',
  description: 'A launcher card and a command that open the tutorial notebooks.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette],
  activate: (app: JupyterFrontEnd, launcher: ILauncher | null, palette: ICommandPalette | null) => {
    app.commands.addCommand(CommandIDs.openTutorials, {
      label: args => (args.isLauncher ? 'Tutorials' : 'Open Workbench Tutorials'),
      caption: 'Open the BigDL Workbench tutorial notebooks',
      icon: workbenchIcon,
      execute: async () => {
        const t = await tutorials();
        if (!t.notebooks.length) {
          Notification.warning('No tutorial notebooks found (see WorkbenchApp.tutorials_dir).');
          return;
        }
        await app.commands.execute('filebrowser:go-to-path', { path: t.folder || '/' });
        return app.commands.execute('docmanager:open', { path: t.notebooks[0] });
      }
    });
    if (launcher) {
      launcher.add({ command: CommandIDs.openTutorials, args: { isLauncher: true }, category: CATEGORY, rank: 1 });
    }
    if (palette) {
      palette.addItem({ command: CommandIDs.openTutorials, category: CATEGORY });
    }
  }
};

export default [runsPlugin, tabsPlugin, tutorialsPlugin];
