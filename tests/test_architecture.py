"""The structure holds: the import graph of emotrack's own modules (read with ast, nothing is
executed) has no cycle, no module imports another's private (underscore) names, imports
between emotrack's modules sit at the top of each module, dependencies run one way
(export -> models -> realtime) and the runtime never imports torch or the training side."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGES = {"emotrack": "emotrack_api", "emotrack.realtime": "realtime", "emotrack.models": "models",
            "emotrack.export": "export", "emotrack.assets": "assets"}
# deferred imports of emotrack's own modules are allowed only here: the CLI's dispatch
DEFERRED_OK = {"emotrack.realtime.cli"}
TRAIN_ONLY = ("torch", "onnx", "onnxscript", "sklearn", "opensmile", "openTSNE", "matplotlib", "librosa", "musicnn")
# the one training-side package the runtime may touch: bench --song times openSMILE, when it is
# installed, beside the shipped graph (a deferred, guarded import in the benchmark only)
RUNTIME_OPTIONAL = {("emotrack.realtime.bench.model", "opensmile")}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for pkg, folder in PACKAGES.items():
        for f in sorted((root / folder).rglob("*.py")):
            rel = f.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, path: Path, known: set[str]):
    """(target module, imported name or None, top level?, line) for every import in a module."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        at_top = id(node) in top or any(id(node) in {id(c) for c in ast.walk(t)} for t in tree.body
                                        if isinstance(t, ast.If | ast.Try))
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, at_top, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, is_pkg, node)
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known:  # "from . import protocol": the module itself
                    yield sub, None, at_top, node.lineno
                else:
                    yield target, a.name, at_top, node.lineno


def graph(root: Path = ROOT):
    mods = modules(root)
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    problems = []
    for m, path in mods.items():
        for target, name, at_top, line in imports(m, path, known):
            own = target == "emotrack" or target.startswith("emotrack.")
            where = f"{path.relative_to(root)}:{line}"
            if own and target in known:
                edges[m].add(target)
            if own and name is not None and name.startswith("_") and name != "__version__" and target != m:
                problems.append(f"{where}: imports the private name {name} from {target}")
            if own and not at_top and m not in DEFERRED_OK:
                problems.append(f"{where}: imports {target} inside a function (emotrack's own imports go at the top)")
            layer = m.split(".")[1] if m.count(".") else "api"
            if layer == "realtime" and (target.startswith(("emotrack.models", "emotrack.export"))
                                        or target.split(".")[0] in TRAIN_ONLY) \
                    and (m, target.split(".")[0]) not in RUNTIME_OPTIONAL:
                problems.append(f"{where}: the runtime imports {target} (realtime stays torch-free and "
                                "never imports the training side)")
            if layer == "models" and target.startswith("emotrack.export"):
                problems.append(f"{where}: models imports {target} (dependencies run export -> models -> realtime)")
    return edges, problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), as a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_cycles_no_private_imports_imports_at_the_top():
    edges, problems = graph()
    assert not cycles(edges), cycles(edges)
    assert not problems, "\n".join(problems)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for folder in PACKAGES.values():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("files, expect", [
    ({"realtime/a.py": "from .b import x\n", "realtime/b.py": "from .a import y\n"}, "cycle"),
    ({"realtime/a.py": "from .core import b\n", "realtime/core/__init__.py": "",
      "realtime/core/b.py": "from emotrack.realtime import a\n"}, "cycle"),
    ({"realtime/a.py": "from .b import _hidden\n", "realtime/b.py": "_hidden = 1\n"}, "private"),
    ({"realtime/a.py": "def f():\n    from .b import x\n", "realtime/b.py": "x = 1\n"}, "inside a function"),
    ({"realtime/a.py": "import torch\n"}, "torch-free"),
    ({"realtime/a.py": "from emotrack.models import train\n", "models/train.py": ""}, "torch-free"),
    ({"models/a.py": "from emotrack.export import card\n", "export/card.py": ""}, "export -> models"),
])
def test_the_check_catches_what_it_should(tmp_path, files, expect):
    edges, problems = graph(_tree(tmp_path, files))
    if expect == "cycle":
        assert cycles(edges)
    else:
        assert any(expect in p for p in problems), problems


def test_modules_and_functions_stay_small():
    """No runtime module over ~350 lines; no function over ~80 (the exceptions are named)."""
    long_functions_ok = {"render_song_markdown", "render_markdown"}  # one list of card lines each
    too_long = []
    for m, path in modules().items():
        text = path.read_text()
        if m.startswith("emotrack.realtime") and len(text.splitlines()) > 360:
            too_long.append(f"{m}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name not in long_functions_ok:
                n = node.end_lineno - node.lineno + 1
                if n > 85 and m.startswith(("emotrack.realtime", "emotrack.export")):
                    too_long.append(f"{m}.{node.name}: {n} lines")
    assert not too_long, too_long
