"""BigDL Workbench."""
