"""The simulators' import arrows run one way: syncd/sim imports nothing of the
product (runtime, config, connectors, mapping), its modules form no cycle, and
the shipped package does not import the test-only contract checker.

Read from the source with ``ast`` (nothing is imported). ``python
tests/sim/test_import_graph.py [repo]`` prints the graph of syncd/sim (plus
syncd.demo and syncd.testing), the arrows into the product and the cycles.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# None: the world builder that needs syncd's installer, mappings and config is
# syncd/sandbox.py, on the product side (see docs/architecture.md, "Simulators").
PENDING: set[str] = set()
TEST_ONLY = ("openapi_core", "openapi_schema_validator", "jsonschema", "jsonschema_path")


def module_name(root: Path, path: Path) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(root: Path, path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports (TYPE_CHECKING and function-level ones too)."""
    mod = module_name(root, path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found.update(subs or {base})
    found.discard(mod)
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = sorted((root / "syncd").rglob("*.py"))
    known = {module_name(root, p) for p in files}
    return {module_name(root, p): imports_of(root, p, known) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(g[v] & g.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def sim_part(g: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {d for d in deps if d.startswith("syncd")} for m, deps in g.items() if m.startswith("syncd.sim")}


def product_arrows(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, d) for m, deps in sim_part(g).items() for d in deps if not d.startswith("syncd.sim"))


def test_simulators_import_nothing_of_the_product():
    arrows = [(m, d) for m, d in product_arrows(graph()) if m not in PENDING]
    assert arrows == [], f"syncd/sim must not import the product: {arrows}"


def test_simulator_modules_form_no_cycle():
    assert cycles(sim_part(graph())) == []


def test_the_whole_package_forms_no_cycle():
    # config.py and mapping_loader.py imported each other (TomlReader) until the
    # reader moved to toml_reader.py.
    whole = {m: {d for d in deps if d.startswith("syncd")} for m, deps in graph().items()}
    assert cycles(whole) == []


def test_shipped_package_does_not_import_test_only_libraries():
    g = graph()
    found = sorted((m, d) for m, deps in g.items() for d in deps if d.split(".")[0] in TEST_ONLY)
    assert found == [], f"the test extra is not installed in production: {found}"


def test_test_helpers_do_not_import_the_runtime_when_imported():
    """syncd.testing is imported by syncd.demo (and so by the CLI): only type hints
    may name the runtime, or importing it could close a cycle through syncd.runtime."""
    tree = ast.parse((ROOT / "syncd" / "testing.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {(n.module or "") for n in top if isinstance(n, ast.ImportFrom)} | \
            {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    assert not {"runtime", ".runtime", "syncd.runtime"} & names


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    g = graph(root)
    shown = {m: d for m, d in g.items() if m.startswith("syncd.sim") or m in ("syncd.demo", "syncd.testing")}
    for mod in sorted(shown):
        lines = len((root / Path(*mod.split("."))).with_suffix(".py").read_text().splitlines()) \
            if (root / Path(*mod.split("."))).with_suffix(".py").exists() else 0
        deps = sorted(d for d in shown[mod] if d.startswith("syncd"))
        print(f"{mod} ({lines} lines) -> {', '.join(deps) or '-'}")
    print("sim -> product:", ", ".join(f"{m} -> {d}" for m, d in product_arrows(g)) or "none")
    print("cycles in syncd/sim:", cycles(sim_part(g)) or "none")
    print("test-only imports in syncd/:", sorted((m, d) for m, ds in g.items() for d in ds
                                                 if d.split(".")[0] in TEST_ONLY) or "none")
