"""netlab's structure: its modules' imports, the Server lifecycle, where a server's lines
go, how a wildcard bind is announced, and the one address formatter.

Plain pytest (no kernel). Every server uses a free port (``port=None``); every wait is
bounded; nothing sleeps to synchronise.
"""

from __future__ import annotations

import ast
import re
import socket
import sys
from pathlib import Path

import pytest

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "helpers"
NETLAB = HELPERS / "netlab"
PACKAGE = "helpers.netlab"
TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _stop_servers():
    yield
    netlab.stop_all()


# --- (a) no import cycle among netlab's modules ------------------------------------------


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The full module names an import statement in ``module`` (a module of PACKAGE)
    may load: each ``from X import y`` counts X and X.y (y may be a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")[: -node.level]  # a module's package is its name minus one
        if not base:
            return []  # above the top-level package: not ours
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [source] + [f"{source}.{alias.name}" for alias in node.names]


def import_graph(folder: Path = NETLAB, package: str = PACKAGE) -> dict[str, set[str]]:
    """For each ``_*.py`` module of the package: the ``_*`` modules it imports, found by
    every import statement anywhere in the file (top level, functions, classes, ifs,
    try blocks), relative at any level or absolute."""
    modules = {p.stem: p for p in sorted(folder.glob("_*.py")) if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for stem, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _resolve(f"{package}.{stem}", node):
                    prefix, _, last = name.rpartition(".")
                    if prefix == package and last in modules and last != stem:
                        targets.add(last)
        graph[stem] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def test_no_import_cycle_among_netlab_modules():
    graph = import_graph()
    # The graph is really read (each form of import: the test below); not tied to the
    # imports of the day, which others change: only Server's base class is fixed.
    assert "_waits" in graph["_server"]  # class Server(Group)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_import_graph_sees_every_form_of_import(tmp_path):
    """The reader itself, on a made-up package: each form of import makes an edge."""
    files = {
        "_a.py": "from ._b import x\n",
        "_b.py": "def f():\n    from . import _c\n",
        "_c.py": "class K:\n    def m(self):\n        if True:\n            import pkg._d\n",
        "_d.py": "try:\n    from pkg._a import y\nexcept ImportError:\n    pass\n",
        "_e.py": "from .. import _a\nfrom ._missing import z\nimport os\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"_a": {"_b"}, "_b": {"_c"}, "_c": {"_d"}, "_d": {"_a"}, "_e": set()}
    assert find_cycle(graph) == ["_a", "_b", "_c", "_d", "_a"]
    assert find_cycle({"_a": {"_b"}, "_b": set()}) is None


# --- (b) the Server lifecycle ------------------------------------------------------------


def accept_forever(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        while True:
            conn, _ = s.accept()
            conn.close()


def test_state_names_the_five_lifecycle_states():
    assert {state.name for state in netlab.State} == {
        "STARTING",
        "RUNNING",
        "FINISHED",
        "STOPPING",
        "STOPPED",
    }


def test_illegal_transition_raises_lifecycle_error_naming_both_states():
    srv = netlab.serve(accept_forever, port=None, announce=False)
    assert srv.state == netlab.State.RUNNING.value
    srv.stop()
    assert srv.state == netlab.State.STOPPED.value
    srv.stop()  # a second stop() is fine: nothing raised, nothing changes
    assert srv.state == netlab.State.STOPPED.value and not srv.running
    with pytest.raises(netlab.LifecycleError) as caught:
        srv._transition(netlab.State.RUNNING)  # the transition function under test
    message = str(caught.value)
    assert netlab.State.STOPPED.value in message and netlab.State.RUNNING.value in message
    assert srv.state == netlab.State.STOPPED.value  # the illegal move changed nothing
    with socket.socket() as s:  # and the port is free again
        s.bind(("127.0.0.1", srv.port))


# --- (c) a server's lines go to its log widget --------------------------------------------


def say_lines(port):
    """For each line a client sends: print it (to stderr if it starts with 'err'), then
    acknowledge it, so the client knows it was recorded before it sends the next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        conn, _ = s.accept()
        with conn:
            buffer = b""
            while data := conn.recv(1024):
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode()
                    print(text, file=sys.stderr if text.startswith("err") else sys.stdout)
                    conn.sendall(b"ok\n")


def _send_lines(client: socket.socket, lines) -> None:
    for line in lines:
        client.sendall(line.encode() + b"\n")
        assert client.recv(3) == b"ok\n"  # printed (recorded) before the ack was sent


def test_log_widget_gets_the_lines_recorded_after_it_in_order(capsys):
    import ipywidgets

    srv = netlab.serve(say_lines, port=None)
    capsys.readouterr()
    with socket.create_connection(srv.address, timeout=TIMEOUT) as client:
        _send_lines(client, ["before the widget"])
        srv.show()  # as usual: printed, labelled
        assert capsys.readouterr().out == "[say_lines] before the widget\n"

        widget = srv.log_widget()
        assert isinstance(widget, ipywidgets.Output)
        assert srv.log_widget() is widget  # one widget per server
        lines = ["first", "err second", "third", "err fourth", "fifth"]
        _send_lines(client, lines)
        srv.show()  # waits until the server is settled, then would print

    shown = capsys.readouterr()
    assert shown.out == "" and shown.err == ""  # no longer printed by show()
    expected = [
        {
            "output_type": "stream",
            "name": "stderr" if line.startswith("err") else "stdout",
            "text": f"[say_lines] {line}\n",
        }
        for line in lines
    ]
    assert [dict(output) for output in widget.outputs] == expected
    assert srv.output().splitlines()[-len(lines) :] == lines  # still recorded
    srv.stop()
    assert capsys.readouterr().out == ""


# --- (d) a wildcard bind is announced with the address to connect to ---------------------


def listen_on(host):
    def server(port):
        with socket.socket() as s:
            s.bind((host, port))
            s.listen()
            conn, _ = s.accept()
            with conn:
                conn.sendall(b"hi")

    return server


@pytest.mark.parametrize("host", ["", "0.0.0.0"], ids=["empty", "0.0.0.0"])
def test_wildcard_bind_is_announced_with_the_loopback_to_connect_to(host, capsys):
    srv = netlab.serve(listen_on(host), port=None, name="everywhere")
    port = srv.port
    lines = capsys.readouterr().out.splitlines()
    assert (
        f"netlab: 'everywhere' is listening on 0.0.0.0:{port} "
        f"(every interface; connect to 127.0.0.1:{port})"
    ) in lines
    assert srv.host == "127.0.0.1" and srv.address == ("127.0.0.1", port)
    with socket.create_connection(srv.address, timeout=TIMEOUT) as client:
        assert client.recv(2) == b"hi"
    srv.wait(TIMEOUT)


# --- (e) format_address is the only address formatter ------------------------------------

_FORMATTER_NAME = re.compile(r"def .*format.*address")


def _helpers_files():
    return sorted(p for p in HELPERS.rglob("*.py") if "__pycache__" not in p.parts)


def test_format_address_is_the_only_function_named_as_an_address_formatter():
    defining = sorted(
        str(path.relative_to(ROOT))
        for path in _helpers_files()
        for line in path.read_text(encoding="utf-8").splitlines()
        if _FORMATTER_NAME.search(line)
    )
    assert defining == ["helpers/netlab/_addresses.py"]
    assert netlab.format_address(("", 5000)) == "0.0.0.0:5000"
    assert netlab.format_address(("::1", 5000)) == "[::1]:5000"


def _joins_host_and_port(node: ast.JoinedStr) -> bool:
    """An f-string with ``{...}:{...}`` in it: a value, a literal ending in ':', a value."""
    parts = node.values
    return any(
        isinstance(before, ast.FormattedValue)
        and isinstance(middle, ast.Constant)
        and str(middle.value).endswith(":")
        and str(middle.value).strip("[]") == ":"
        and isinstance(after, ast.FormattedValue)
        for before, middle, after in zip(parts, parts[1:], parts[2:], strict=False)
    )


# Functions outside _addresses.py that format host:port themselves (found by the test
# below): none; each calls format_address. Add an entry only with a reason.
KNOWN_OTHER_FORMATTERS: set[tuple[str, str]] = set()


def _own_nodes(function: ast.AST):
    """The nodes of a function's body, without those of functions defined inside it."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def test_no_other_function_formats_host_and_port_itself():
    """Beyond the names: a function whose own f-strings put ``{host}:{port}`` together."""
    found = set()
    for path in _helpers_files():
        relative = str(path.relative_to(ROOT))
        if relative == "helpers/netlab/_addresses.py":
            continue
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                isinstance(node, ast.JoinedStr) and _joins_host_and_port(node)
                for node in _own_nodes(function)
            ):
                found.add((relative, function.name))
    assert found == KNOWN_OTHER_FORMATTERS
