"""A real browser runs notebooks 00 and 01 in JupyterLab, as a learner would.

Starts JupyterLab on a free loopback port over a copy of the notebooks (so autosave can
never write into the repository), opens each notebook in Debian's headless Chromium
driven by playwright, runs all cells, and checks that every cell ran, that only the
cells tagged ``raises-exception`` show an error, that the pictures (SVG diagrams) and
widgets rendered. Screenshots go to artifacts/browser/ for a person to look at.

Chromium comes from Debian (``make system-tools``, which ``make test`` and .ci/run run
first, installs it with apt-get); playwright's own browser download is never used. This
test does not skip when Chromium is missing: it fails and says how to install it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest
from labserver import Lab

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts" / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert os.path.exists(CHROMIUM), (
        "Chromium is missing: make system-tools (or: sudo apt-get install chromium)"
    )
    root = tmp_path_factory.mktemp("lab")
    for path in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"):
        shutil.copy(path, root / path.name)
    # Own settings: no "news" pop-up over the screenshots, every cell kept in the page
    # (JupyterLab leaves cells out of view out of the DOM by default), nothing in ~/.jupyter.
    settings = tmp_path_factory.mktemp("settings")
    for name, value in {
        "apputils-extension/notification": {"fetchNews": "false"},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    token = secrets.token_hex(16)

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={token}",
            "--LabApp.expose_app_in_browser=True",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ]

    workspaces = tmp_path_factory.mktemp("workspaces")
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(workspaces),
    )
    server = Lab.start(command, token, env=env)
    try:
        yield server.base, token, root
    finally:
        server.stop()


def raising_cells(path: Path) -> int:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return sum(
        1
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        and "raises-exception" in cell.get("metadata", {}).get("tags", [])
    )


@pytest.mark.parametrize(
    "name, wants_svg, wants_widget",
    [("00-welcome.ipynb", False, True), ("01-first-server-and-client.ipynb", True, False)],
)
def test_notebook_runs_in_a_real_browser(lab, name, wants_svg, wants_widget):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            # ?reset: a fresh workspace, with only this notebook open
            page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                ".connectionStatus === 'connected'"
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # Every code cell's prompt shows a number once it has run ("[*]" while queued).
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll(
                        '.jp-CodeCell .jp-InputArea-prompt')];
                    return prompts.length > 0 &&
                        prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                }""",
                timeout=120_000,
            )
            errors = page.evaluate(
                """() => {
                    let n = 0;
                    for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
                        if (cell.model.type !== 'code') continue;
                        const outputs = cell.model.outputs;
                        for (let i = 0; i < outputs.length; i++) {
                            if (outputs.get(i).type === 'error') n++;
                        }
                    }
                    return n;
                }"""
            )
            code_cells = page.locator(".jp-CodeCell").count()
            svgs = page.locator(".jp-OutputArea-output .netlab-diagram svg").count()
            widgets = page.locator(".jp-OutputArea-output .jupyter-widgets").count()
            page.screenshot(path=str(ARTIFACTS / name.replace(".ipynb", ".png")), full_page=False)
            # a second picture, scrolled to the first diagram, for people to look at
            if svgs:
                diagram = page.locator(".jp-OutputArea-output .netlab-diagram").first
                diagram.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / name.replace(".ipynb", "-diagram.png")))
        finally:
            browser.close()
    assert code_cells > 0
    assert errors == raising_cells(root / name), f"{errors} error outputs in {name}"
    if wants_svg:
        assert svgs > 0, "no SVG diagram rendered"
    if wants_widget:
        assert widgets > 0, "no widget rendered"


def test_notebook_08_site_in_a_real_browser(tmp_path):
    """Notebook 08's own server, run by its cells in a kernel, serves Chromium: the page
    loads, its script fetches /api/files, the JSON endpoint answers with its content type,
    and the next cell shows the browser's requests in the server's log."""
    import re

    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), (
        "Chromium is missing: make system-tools (or: sudo apt-get install chromium)"
    )
    name = "08-http-from-scratch.ipynb"
    shutil.copy(ROOT / "notebooks" / name, tmp_path / name)  # its scratch folder goes there
    nb = nbformat.read(tmp_path / name, as_version=4)
    client = NotebookClient(
        nb, timeout=60, startup_timeout=60, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )  # fmt: skip
    with client.setup_kernel():
        url = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            text = "".join(o.get("text", "") for o in cell.outputs)
            found = re.search(r"open (http://127\.0\.0\.1:\d+/) in your browser", text)
            if found:
                url = found.group(1)
                break
        assert url, "no cell printed the server's URL ('open http://127.0.0.1:PORT/ ...')"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*FLAGS, "--no-proxy-server"]
            )
            try:
                page = browser.new_page(viewport={"width": 900, "height": 500})
                page.set_default_timeout(30_000)
                response = page.goto(url)
                assert response is not None and response.status == 200
                assert response.headers["content-type"] == "text/html"
                page.wait_for_function(
                    "() => document.getElementById('files').textContent.startsWith('files:')"
                )
                heading = page.locator("h1").text_content()
                files = page.locator("#files").text_content()
                page.screenshot(path=str(ARTIFACTS / "08-site.png"))
                response = page.goto(url + "api/files")
                assert response is not None and response.status == 200
                kind = response.headers["content-type"]
                listing = response.json()
                missing = page.goto(url + "no-such-page.html")
                missing_status = missing.status if missing is not None else None
                # what Chromium sends for dot segments, plain and encoded (the URL standard
                # removes both), and for an encoded slash (kept): the server's log tells
                for target in ("notes/../hello.txt", "notes/%2e%2e/hello.txt"):
                    page.goto(url + target)
                leaked = page.goto(url + "notes/..%2f..%2fsecret.txt")
                leaked_text = leaked.text() if leaked is not None else ""
            finally:
                browser.close()
        log = nbformat.v4.new_code_cell("print(srv.output())\nsrv.stop()")
        nb.cells.append(log)
        client.execute_cell(log, len(nb.cells) - 1)
        text = "".join(o.get("text", "") for o in log.outputs)
    # srv.output()'s own lines (netlab may also show them labelled "[site_server] ...")
    logged = "\n".join(line for line in text.splitlines() if not line.startswith("["))
    assert heading == "Served by your socket server"
    assert files == "files: hello.txt, index.html, notes/todo.txt"
    assert kind == "application/json"
    assert listing == {"files": ["hello.txt", "index.html", "notes/todo.txt"]}
    assert missing_status == 404
    for line in ("GET / HTTP/1.1 -> 200", "GET /api/files HTTP/1.1 -> 200",
                 "GET /no-such-page.html HTTP/1.1 -> 404"):  # fmt: skip
        assert line in logged, logged
    # both dot-segment forms arrived as /hello.txt; the encoded slash went through as sent,
    # and the notebook's naive server (before Exercise 3) gave the secret away to it
    after = logged.partition("GET /no-such-page.html HTTP/1.1 -> 404")[2]
    assert after.count("GET /hello.txt HTTP/1.1 -> 200") == 2, logged
    assert "GET /notes/..%2f..%2fsecret.txt HTTP/1.1 -> 200" in logged, logged
    assert leaked_text == "the password is swordfish\n"


def test_notebook_08_runs_in_jupyterlab(lab):
    """Notebook 08 run all in JupyterLab, as a learner would: every cell runs, no error
    (its check cells answer "not done yet"), and the relay's diagram renders as SVG."""
    test_notebook_runs_in_a_real_browser(lab, "08-http-from-scratch.ipynb", True, False)


def test_notebook_09_chat_windows_in_a_real_browser(lab):
    """Notebook 09 in JupyterLab: Chromium runs the cells up to the two chat windows (two
    clients of one server, in one kernel), types a line into alice's text box, clicks Send,
    and sees the line arrive in bob's window and in the server's log widget; then the same
    from bob to alice. Screenshots: artifacts/browser/09-chat*.png."""
    import nbformat
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    name = "09-chat-room.ipynb"
    cells = nbformat.read(root / name, as_version=4).cells
    windows = next(
        i for i, c in enumerate(cells) if "chat-windows" in c.get("metadata", {}).get("tags", [])
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                ".connectionStatus === 'connected'"
            )
            # run every cell above the one after the chat windows' cell (it included)
            page.evaluate(
                """(index) => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    panel.content.activeCellIndex = index + 1;
                    return window.jupyterapp.commands.execute('notebook:run-all-above');
                }""",
                windows,
            )
            page.wait_for_function(
                """(index) => {
                    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
                    return cells[index].model.executionCount !== null &&
                        document.querySelector('.chat-bob textarea') !== null;
                }""",
                arg=windows,
                timeout=120_000,
            )
            errors = page.evaluate(
                """(index) => {
                    let n = 0;
                    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
                    for (const cell of cells.slice(0, index + 1)) {
                        if (cell.model.type !== 'code') continue;
                        const outputs = cell.model.outputs;
                        for (let i = 0; i < outputs.length; i++) {
                            if (outputs.get(i).type === 'error') n++;
                        }
                    }
                    return n;
                }""",
                windows,
            )
            page.locator(".chat-bob").scroll_into_view_if_needed()
            page.wait_for_function(
                "() => document.querySelector('.chat-alice textarea').value"
                ".includes('* bob joined')"
            )
            page.locator(".chat-alice input[type=text]").fill("hello from Chromium")
            page.locator(".chat-alice button").click()
            page.wait_for_function(
                "() => document.querySelector('.chat-bob textarea').value"
                ".includes('alice: hello from Chromium')"
            )
            page.locator(".chat-bob input[type=text]").fill("hi alice, bob here")
            page.locator(".chat-bob button").click()
            page.wait_for_function(
                "() => document.querySelector('.chat-alice textarea').value"
                ".includes('bob: hi alice, bob here')"
            )
            alice_log = page.locator(".chat-alice textarea").input_value()
            bob_log = page.locator(".chat-bob textarea").input_value()
            alice_box = page.locator(".chat-alice input[type=text]").input_value()
            page.screenshot(path=str(ARTIFACTS / "09-chat.png"))
            server_log = page.locator(".jp-OutputArea-output .widget-output").first
            server_log.scroll_into_view_if_needed()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.widget-output')].some("
                "e => e.textContent.includes('[chat_server] bob: hi alice, bob here'))"
            )
            server_text = server_log.text_content()
            page.screenshot(path=str(ARTIFACTS / "09-chat-server-log.png"))
        finally:
            browser.close()
    assert errors == 1, f"{errors} error outputs (only the RuntimeError cell should have one)"
    assert alice_box == "", "the text box was not emptied after Send"
    assert bob_log.splitlines() == [
        "* bob joined",
        "alice: hello from Chromium",
        "bob: hi alice, bob here",
    ], bob_log
    assert alice_log.splitlines()[-3:] == [
        "* bob joined",
        "alice: hello from Chromium",
        "bob: hi alice, bob here",
    ], alice_log
    for line in ("alice joined", "bob joined", "alice: hello from Chromium"):
        assert f"[chat_server] * {line}" in server_text or f"[chat_server] {line}" in server_text


def test_notebook_09_runs_in_jupyterlab(lab):
    """Notebook 09 run all in JupyterLab: every cell runs, only the RuntimeError cell (tagged
    raises-exception) shows an error, and the chat windows render as widgets."""
    test_notebook_runs_in_a_real_browser(lab, "09-chat-room.ipynb", False, True)
