"""The layout's promises, read from the source with ast (fast, no model): polyseek/ below index/
below search/ below the page; no import circle; `pip install .` ships what the CLIs import."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("polyseek", "index", "search")  # lowest first: each may import only those before it
PAGE_MODULES = tuple(sorted(p.stem for p in ROOT.glob("*.py")))  # app.py, app_monitor.py, ...


def _modules():
    found = {p.stem: p for p in ROOT.glob("*.py")}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name, path, top_level_only):
    """The project modules `name` imports; with top_level_only, only those run at import time
    (not the ones imported inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    nodes = list(ast.iter_child_nodes(tree)) if top_level_only else list(ast.walk(tree))
    if top_level_only:  # imports under a module-level if/try still run at import time
        nodes += [n for stmt in list(nodes) if isinstance(stmt, (ast.If, ast.Try)) for n in ast.walk(stmt)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from pkg import mod` imports pkg.mod; `from pkg.mod import f` imports pkg.mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "all"])
def test_each_package_imports_only_those_below_it(top_level_only):
    wrong = []
    for name, path in MODULES.items():
        if "." not in name and name not in PACKAGES:
            continue  # the page's modules may import everything
        own = PACKAGES.index(name.split(".")[0])
        for target in _imports(name, path, top_level_only):
            layer = target.split(".")[0]
            if layer in PAGE_MODULES or PACKAGES.index(layer) > own:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "polyseek/ < index/ < search/ < the page: " + "; ".join(sorted(wrong))


def test_no_import_circle_at_import_time():
    graph = {name: _imports(name, path, top_level_only=True) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_no_import_circle_even_inside_functions():
    graph = {name: _imports(name, path, top_level_only=False) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_pyproject_ships_every_package_and_entry_point():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = re.search(r"^packages\s*=\s*\[(.*?)\]", text, re.M).group(1)
    shipped = set(re.findall(r'"([^"]+)"', listed))
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for package in PACKAGES
               for p in (ROOT / package).rglob("__init__.py")}
    assert shipped == on_disk and {name.split(".")[0] for name in shipped} == set(PACKAGES)
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    for module, function in re.findall(r'=\s*"([\w.]+):(\w+)"', scripts):
        assert module in MODULES, f"entry point {module}:{function} names no module"
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body), module
