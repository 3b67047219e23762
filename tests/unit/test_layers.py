"""The package's import graph is layered: no module imports one from its own layer's future.

A learner reads catlog bottom-up (spec/overview.md gives the order). That only works if a
module never needs one above it: the codec knows nothing of segments, the store nothing of
the server. :data:`LAYERS` is that order, written down once; the test parses every module's
imports (those made at run time: an ``if TYPE_CHECKING:`` import is for annotations only and
may point anywhere) and fails on an import that runs back up, or sideways within a layer
where a cycle could hide, and on a module the list does not place. Parts that call back into
the writer (compaction) name it only in annotations and get it passed in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import catlog

PACKAGE = Path(catlog.__file__).parent

LAYERS: list[set[str]] = [
    # Foundations: import nothing from catlog.
    {
        "errors",
        "clock",
        "codec",
        "crashstate",
        "fs",
        "longdouble",
        "protocol.events",
        "protocol.inline",
        "protocol.pattern",
        "protocol.replies",
    },
    # One concept on top of the foundations.
    {
        "arguments",
        "index",
        "recovery",
        "filecache",
        "simfile",
        "reopen",
        "commit",
        "compactionplan",
        "protocol.line",
    },
    # On one such concept: segments on the file cache, the walks on the index, the simulated
    # file system on its files.
    {"segment", "walk", "simfs", "keyspace"},
    # Records in bulk: hints, batches, walking a directory, the protocol readers.
    {"hint", "batch", "scan", "snapshot", "protocol.resp"},
    # The store's parts, the tools that read a directory without a store, and what a
    # connection may do (auth) and queue (multi).
    {
        "hintwriter",
        "opening",
        "reading",
        "compactionoutputs",
        "repair",
        "datamap",
        "multi",
        "protocol",
        "auth",
    },
    # Rotation, then compaction, which rotates: both run under the write lock and name the
    # writer only in annotations.
    {"rotation"},
    {"compaction"},
    # The settings a store opens with, and its segments by slot and in order.
    {"options", "segmentset"},
    # The write lock and the plain writes, then the writes that read first, then transactions.
    {"writer"},
    {"updates"},
    {"transaction", "stats"},
    # What keeps an open store sound (durability, compaction, closing), then the store, the
    # façade over them all.
    {"maintenance"},
    {"store"},
    # Test hooks on the store (it names the store only in annotations).
    {"testing"},
    # The public face of the engine.
    {""},
    # The command-line tools, each a module of catlog/tools/, on their shared parts.
    {"tools", "tools.status", "tools.text", "tools.progress"},
    {"tools.listing"},
    {"tools.check", "tools.dump", "tools.export", "tools.repair", "tools.compact"},
    {"tools.map"},
    # What is built on the engine: the server's commands, the server, the tools.
    {"groupcommit", "serverconfig"},
    # The Redis commands: their context and argument parsing, the families, then the table.
    {"commands.context"},
    {"commands.arguments"},
    {
        "commands.strings",
        "commands.keys",
        "commands.server",
        "commands.connection",
        "commands.transactions",
    },
    {"commands"},
    {"sessions"},
    {"connection"},
    {"server"},
    {"cli"},
    {"__main__"},
]
"""Layers from the bottom: a module may import from earlier layers only. The empty name is the
package itself (``catlog/__init__.py``, the engine's public API)."""


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _runtime_imports(name: str, path: Path) -> set[str]:
    """The catlog modules ``name`` imports at run time (relative or absolute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [part for part in package if part]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.ImportFrom):
            found.update(_targets(node, package))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "catlog" or alias.name.startswith("catlog."):
                    found.add(alias.name.removeprefix("catlog").removeprefix("."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.ImportFrom, package: list[str]) -> set[str]:
    if node.level == 0:
        module = node.module or ""
        if module != "catlog" and not module.startswith("catlog."):
            return set()
        base = module.removeprefix("catlog").removeprefix(".")
    else:
        up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join([*up, *([node.module] if node.module else [])])
    names = _module_names()
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}" if base else alias.name
        targets.add(submodule if submodule in names else base)
    return targets


def _layer_of() -> dict[str, int]:
    return {name: depth for depth, layer in enumerate(LAYERS) for name in layer}


def test_every_module_is_placed_in_a_layer() -> None:
    placed = _layer_of()
    unplaced = sorted(set(_module_names()) - set(placed))
    assert not unplaced, f"place these modules in LAYERS (tests/unit/test_layers.py): {unplaced}"
    gone = sorted(set(placed) - set(_module_names()))
    assert not gone, f"LAYERS names modules that do not exist: {gone}"


def test_no_import_runs_back_up() -> None:
    layer = _layer_of()
    upward = []
    for name, path in sorted(_module_names().items()):
        for target in sorted(_runtime_imports(name, path)):
            if target not in layer or name not in layer:
                continue
            if layer[target] < layer[name]:
                continue
            upward.append(f"catlog.{name or '__init__'} imports catlog.{target or '__init__'}")
    assert not upward, "imports that run back up or sideways:\n" + "\n".join(upward)


def test_the_checker_sees_relative_absolute_and_hidden_imports(tmp_path: Path) -> None:
    """The parser must not miss the import forms catlog uses, or the layer test proves nothing."""
    names = _module_names()
    store_imports = _runtime_imports("store", names["store"])
    assert {"segment", "maintenance", "writer"} <= store_imports
    resp = _runtime_imports("protocol.resp", names["protocol.resp"])
    assert "codec" in resp  # written as ``from catlog.codec import ...``
    assert "protocol.events" in resp
    compaction = _runtime_imports("compaction", names["compaction"])
    assert "codec" in compaction  # ``from . import codec``
    transaction = _runtime_imports("transaction", names["transaction"])
    assert "batch" in transaction
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .server import Server\n"
        "def f():\n    from .cli import main\n",
        encoding="utf-8",
    )
    assert _runtime_imports("m", source) == {"cli"}
