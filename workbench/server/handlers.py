"""REST handlers of ``<base_url>workbench/api/``.

    GET    runs                     {"runs_dir": ..., "runs": [record, ...]} (newest first)
    GET    runs/<name>              one run's record
    POST   runs/<name>/stop         ask the kernel training the run to stop
    POST   runs/<name>/tensorboard  start (or reuse) TensorBoard for the run: {"port", "path"}
    DELETE runs/<name>/tensorboard  stop it
    POST   tensorboard              TensorBoard for the whole runs dir (DELETE stops it)
    GET    tensorboards             the TensorBoards this server runs
    GET    tutorials                the tutorial notebooks (contents-API paths)
    GET    config                   {"runs_dir", "spark_ui_url", "tutorials_dir"}

Every handler needs the server's token (or its login cookie) and refuses run names that are
not a plain directory name strictly inside the runs directory.
"""
from __future__ import annotations

import asyncio
import json
import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from .. import runs as registry
from ..summary import tensorboard

AUTH_RESOURCE = "workbench"


class _Handler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def wb(self):
        return self.settings["workbench_paths"]

    def run_path(self, name):
        try:
            return registry.run_dir(self.wb["runs_dir"], name)
        except registry.RunPathError as e:
            raise web.HTTPError(400, str(e)) from None

    def existing_run(self, name):
        path = self.run_path(name)
        if not os.path.isdir(path):
            raise web.HTTPError(404, f"no run named {name!r}")
        return path

    def shown_runs_dir(self):
        runs, root = self.wb["runs_dir"], self.wb["root_dir"]
        rel = os.path.relpath(runs, root)
        return rel if not rel.startswith("..") else os.path.basename(runs)

    def write_json(self, document, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(document, default=str))


class RunsHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self):
        self.write_json({"runs_dir": self.shown_runs_dir(),
                         "runs": registry.list_runs(self.wb["runs_dir"])})


class RunHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.existing_run(name)
        record = registry.read_run(self.wb["runs_dir"], name)
        if record is None:
            raise web.HTTPError(404, f"no run named {name!r}")
        self.write_json(record)


class StopHandler(_Handler):
    @web.authenticated
    @authorized
    def post(self, name):
        self.existing_run(name)
        registry.request_stop(self.wb["runs_dir"], name)
        self.write_json({"stop_requested": name}, 202)


async def _serve(logdir):
    tb = tensorboard.start(logdir, wait=False)  # started from the event loop's thread
    await asyncio.get_running_loop().run_in_executor(None, tensorboard.ready, tb)
    return tb


class TensorBoardHandler(_Handler):
    def logdir(self, name):
        return self.existing_run(name) if name else self.wb["runs_dir"]

    @web.authenticated
    @authorized
    async def post(self, name=None):
        try:
            tb = await _serve(self.logdir(name))
        except RuntimeError as e:
            raise web.HTTPError(500, str(e).splitlines()[0]) from None
        self.write_json({"run": name, **tb.to_dict()})

    @web.authenticated
    @authorized
    def delete(self, name=None):
        stopped = tensorboard.stop(self.logdir(name))
        self.write_json({"run": name, "stopped": stopped})


class TensorBoardsHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self):
        runs = self.wb["runs_dir"]
        out = []
        for logdir, tb in tensorboard.running().items():
            rel = os.path.relpath(logdir, runs)
            if rel.startswith(".."):
                continue
            out.append({"run": None if rel == "." else rel, **tb.to_dict()})
        self.write_json({"tensorboards": out})


class TutorialsHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self):
        root = self.wb["root_dir"]
        folder = os.path.realpath(os.path.join(root, self.wb["tutorials_dir"]))
        notebooks = []
        if (folder == root or folder.startswith(root + os.sep)) and os.path.isdir(folder):
            notebooks = sorted(os.path.relpath(os.path.join(folder, f), root)
                               for f in os.listdir(folder) if f.endswith(".ipynb"))
        rel = os.path.relpath(folder, root)
        self.write_json({"folder": "" if rel == "." or rel.startswith("..") else rel,
                         "notebooks": notebooks})


class ConfigHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self):
        self.write_json({"runs_dir": self.shown_runs_dir(),
                         "spark_ui_url": self.wb["spark_ui_url"],
                         "tutorials_dir": self.wb["tutorials_dir"]})


_NAME = r"(?P<name>[^/]+)"
handlers = [
    (r"/workbench/api/runs", RunsHandler),
    (rf"/workbench/api/runs/{_NAME}", RunHandler),
    (rf"/workbench/api/runs/{_NAME}/stop", StopHandler),
    (rf"/workbench/api/runs/{_NAME}/tensorboard", TensorBoardHandler),
    (r"/workbench/api/tensorboard", TensorBoardHandler),
    (r"/workbench/api/tensorboards", TensorBoardsHandler),
    (r"/workbench/api/tutorials", TutorialsHandler),
    (r"/workbench/api/config", ConfigHandler),
]
