"""The edges between bass's parts, read from the source with `ast`: data flows one way
(trigger → queue → worker → builder → OTLP → store → UI), and a part imports only what
is below it. An import across a forbidden edge fails here, naming file and line."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI_ROUTES = ("home", "pipelines", "builds", "logview", "search", "status", "query_api", "actions",
             "login", "traces", "trends")  # fmt: skip

# (files, what they must not import, why)
RULES = [
    ("bass/store/*.py", ("bass",), "the store is the bottom layer: it imports nothing of bass"),
    ("bass/worker/*.py", ("bass.store", "bass.ingest", "bass.ui", "bass.orchestrator",
                          "bass.app", "bass.server", "bass.webhook", "bass.worker_api"),
     "the worker talks to the server over HTTP only"),
    ("bass/ui/*.py", ("bass.ingest", "bass.worker", "bass.app", "bass.server"),
     "the dashboard reads the store; counters come through ingest_status"),
    ("bass/ingest/*.py", ("bass.orchestrator", "bass.ui", "bass.worker", "bass.app",
                          "bass.webhook", "bass.worker_api", "bass.pruning"),
     "the receiver tells the orchestrator through on_root_span, which create_app wires"),
    ("bass/orchestrator.py", ("bass.ingest", "bass.ui", "bass.worker", "bass.app",
                              "bass.webhook", "bass.worker_api", "bass.notify"),
     "the orchestrator is heard through on_finished, it calls no listener by name"),
    ("bass/demo.py", ("bass.cli",), "cli calls demo, not the other way"),
    ("bass/states.py", ("bass",), "the vocabulary comes from the builder alone"),
    ("bass/config.py", ("bass",), "settings and files sit below everything that reads them"),
    ("bass/refs.py", ("bass",), "a leaf"),
    ("bass/reload.py", ("bass.app", "bass.server", "bass.ui", "bass.orchestrator", "bass.ingest",
                        "bass.worker", "bass.store"),
     "the watcher knows the files; the app gives it apply"),
    ("bass/forges*.py", ("bass.app", "bass.server", "bass.ui", "bass.orchestrator",
                         "bass.ingest", "bass.worker", "bass.store", "bass.webhook"),
     "reading a delivery is pure"),
    ("bass/params.py", ("bass",), "a leaf"),
    ("bass/ansi.py", ("bass",), "a leaf"),
]  # fmt: skip
# Leaves any part may import, the store included: pure functions of text.
LEAVES = ("bass.ansi",)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            # `from bass import states` imports bass.states
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _is_submodule(module: str) -> bool:
    return (ROOT / (module.replace(".", "/") + ".py")).exists() or (
        ROOT / module.replace(".", "/") / "__init__.py"
    ).exists()


def violations(pattern: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(ROOT.glob(pattern)):
        parts = path.relative_to(ROOT).with_suffix("").parts
        # a module of a subpackage (bass.store.db) may import its own package
        own = ".".join(parts[:-1] if len(parts) > 2 else parts).removesuffix(".__init__")
        found = imports(path)
        for line, module in found:
            if any(_under(module, leaf) for leaf in LEAVES):
                continue
            if module == "bass" and any(
                n == line and any(_under(m, leaf) for leaf in LEAVES) for n, m in found
            ):
                continue  # `from bass import ansi`
            if _under(module, own) or (module.count(".") > 1 and not _is_submodule(module)):
                continue  # itself, or a name imported from a module (checked as the module)
            if module == "bass" and forbidden != ("bass",):
                continue  # the package itself re-exports only the builder
            if any(_under(module, f) for f in forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize(("pattern", "forbidden", "why"), RULES)
def test_no_import_across_a_forbidden_edge(pattern: str, forbidden: tuple, why: str) -> None:
    assert list(ROOT.glob(pattern)), f"{pattern} matches no file"
    found = violations(pattern, forbidden)
    assert not found, f"{why}:\n  " + "\n  ".join(found)


def test_dashboard_route_modules_do_not_import_each_other() -> None:
    found = []
    for name in UI_ROUTES:
        path = ROOT / "bass" / "ui" / f"{name}.py"
        for line, module in imports(path):
            other = [r for r in UI_ROUTES if r != name and _under(module, f"bass.ui.{r}")]
            if other:
                found.append(f"bass/ui/{name}.py:{line} imports {module}")
    assert not found, "what route modules share lives in bass.ui or bass.ui.steps:\n  " + (
        "\n  ".join(found)
    )


@pytest.mark.parametrize("path", ["builder/bass_builder.py", "bass/__init__.py"])
def test_the_builder_needs_only_the_standard_library(path: str) -> None:
    """Build scripts import the builder (and `bass`, which is only the builder) in any
    Python on any machine: nothing but the standard library may come with it."""
    allowed = set(sys.stdlib_module_names) | {"__future__", "bass_builder"}
    found = [
        f"{path}:{line} imports {module}"
        for line, module in imports(ROOT / path)
        if module.split(".")[0] not in allowed
    ]
    assert not found, found


def test_the_checker_sees_a_forbidden_import(tmp_path: Path, monkeypatch) -> None:
    """The rules bite: a store module importing the orchestrator is reported."""
    fake = tmp_path / "bass" / "store"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from bass.orchestrator import Orchestrator\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("bass/store/*.py", ("bass",)) == [
        "bass/store/x.py:2 imports bass.orchestrator"
    ]
