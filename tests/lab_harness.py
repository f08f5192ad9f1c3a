"""The browser tests' harness: a real JupyterLab on 127.0.0.1 (isolated settings, token) and
headless Debian Chromium driven by Playwright (which never downloads a browser here), plus
helpers that drive the notebook through ``window.jupyterapp``."""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout_labextension(base_dir):
    """Serve this checkout's built extension (``extension/labextension``, from ``jlpm build``
    or an editable install) ahead of an installed copy: a data dir first on JUPYTER_PATH holds
    a link to it, and JupyterLab takes the first copy of an extension it finds.  Returns the
    data dir, or None when the checkout has no build (the installed copy is served)."""
    built = os.path.join(REPO, "extension", "labextension")
    if not os.path.exists(os.path.join(built, "package.json")):
        return None
    data = base_dir / "jupyter-data"
    (data / "labextensions").mkdir(parents=True, exist_ok=True)
    link = data / "labextensions" / "bigdl-workbench"
    if not link.exists():
        link.symlink_to(built, target_is_directory=True)
    return str(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(base_dir, root):
    """JupyterLab serving ``root`` (its settings, workspaces, runtime and config dirs under
    ``base_dir``); yields ``{"url", "root", "log", "server"}``."""
    env = dict(os.environ)
    for var, sub in (("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR",
                                                                "workspaces"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config")):
        env[var] = str(base_dir / sub)
    env.pop("WORKBENCH_RUNS_DIR", None)
    data = checkout_labextension(base_dir)
    if data is not None:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (data, env.get("JUPYTER_PATH")) if p)
    port = free_port()
    log = open(base_dir / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # bounds a hang only: a loaded machine starts it slowly
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start:\n" + (base_dir / "lab.log").read_text())
            time.sleep(0.3)
    try:
        yield {"url": url, "root": root, "log": base_dir / "lab.log", "server": server}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextlib.contextmanager
def chromium(profile):
    """A headless Chromium browser context (Playwright) with a fresh profile dir."""
    from playwright.sync_api import sync_playwright
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def element_screenshot(locator, path, attempts=5):
    """``locator.screenshot(path=path)``, taken again if the element was replaced meanwhile.

    The sidebar rebuilds its run list and comparison on every refresh (every 2 s), replacing
    their nodes; a screenshot resolves its node once and then waits for it to be stable, so a
    refresh in between leaves it holding a detached node ("not visible or not an
    HTMLElement").  The next attempt resolves the new node.  Any other error is raised."""
    from playwright.sync_api import Error
    for attempt in range(attempts):
        try:
            return locator.screenshot(path=path)
        except Error as e:
            if "not visible or not an HTMLElement" not in str(e) or attempt == attempts - 1:
                raise


def screenshots_dir(tmp_path):
    out = os.environ.get("WORKBENCH_BROWSER_OUTPUT") or str(tmp_path / "screenshots")
    os.makedirs(out, exist_ok=True)
    return out


def open_notebook(page, lab, path):
    """Open ``path`` (relative to the server's root) and wait for its kernel to be idle."""
    page.goto(f"{lab['url']}/lab/tree/{path}?token={TOKEN}&reset")
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                  const k = w && w.sessionContext && w.sessionContext.session
                             && w.sessionContext.session.kernel;
                  return k && k.status === 'idle'; }""", timeout=300_000)
    close_toasts(page)


def close_toasts(page):
    for button in page.locator(".jp-Notification-Toast-Close").all():
        try:
            button.click(timeout=1000)
        except Exception:
            pass


def run_cell(page, index, wait=True):
    """Run cell ``index`` of the current notebook (await its end, or not)."""
    return page.evaluate(
        """async ([index, wait]) => {
            const app = window.jupyterapp;
            const panel = app.shell.currentWidget;
            panel.content.activeCellIndex = index;
            const done = app.commands.execute('notebook:run-cell');
            if (wait) { await done; }
            return true;
        }""", [index, wait])


def cell_index(page, text):
    return page.evaluate(
        """(text) => window.jupyterapp.shell.currentWidget.content.widgets
                .findIndex(c => c.model.sharedModel.getSource().includes(text))""", text)


def cell_output_text(page, index):
    return page.evaluate(
        """(index) => JSON.stringify(window.jupyterapp.shell.currentWidget.content
                .widgets[index].model.outputs.toJSON())""", index)


def run_new_cell(page, code, marker):
    """Append a cell with ``code``, run it, and return its output once it contains
    ``marker``."""
    page.evaluate(
        """async (code) => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.length - 1;
            await app.commands.execute('notebook:insert-cell-below');
            nb.activeCell.model.sharedModel.setSource(code);
            await app.commands.execute('notebook:run-cell');
        }""", code)
    last = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length - 1")
    page.wait_for_function(
        """([i, marker]) => JSON.stringify(window.jupyterapp.shell.currentWidget.content
                  .widgets[i].model.outputs.toJSON()).includes(marker)""", arg=[last, marker])
    return cell_output_text(page, last)
