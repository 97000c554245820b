"""The tree shows the layers: resnet_lab/ holds one subpackage per layer (ARCHITECTURE.md), and
the imports, read from the source, go only downwards and never round in a circle."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "resnet_lab"
# bottom to top: a layer may import only those before it (and itself)
LAYERS = ["nets", "instruments", "training", "grid", "pictures", "lessons", "app", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The lab's modules that `path` imports (type-checking imports too), by dotted name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("resnet_lab"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("resnet_lab")}
    return found & set(known)


def layer_of(module: str) -> str | None:
    """The layer of a module (None for the package's own __init__ and __main__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else None


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_the_package_folder_shows_only_the_layers():
    entries = {p.stem for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries - {"__init__", "__main__"} == set(LAYERS)
    for layer in LAYERS[:-1]:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"{layer}/__init__.py says what it is for"


def test_every_import_goes_down_the_layers():
    upward = [f"{src} imports {dst}" for src, dsts in graph().items() for dst in dsts
              if layer_of(src) and LAYERS.index(layer_of(dst)) > LAYERS.index(layer_of(src))]
    assert upward == []


def test_no_module_imports_itself_round_a_circle():
    g, state, cycles = graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(g[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_architecture_md_draws_the_layers_in_their_order():
    drawn = (ROOT / "ARCHITECTURE.md").read_text().partition("## The layers")[2]
    where = [drawn.find(f"{layer}/") for layer in LAYERS[:-1]]
    assert -1 not in where and where == sorted(where)
