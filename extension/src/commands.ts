export namespace CommandIDs {
  export const showRuns = 'workbench:show-runs';
  export const refreshRuns = 'workbench:refresh-runs';
  export const openTensorBoard = 'workbench:open-tensorboard';
  export const openSparkUI = 'workbench:open-spark-ui';
  export const stopRun = 'workbench:stop-run';
  export const openTutorials = 'workbench:open-tutorials';
}
