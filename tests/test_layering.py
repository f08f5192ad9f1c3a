"""The layering of docs/ARCHITECTURE.md, read from the source: each layer imports only from the
layers below it.  The only upward imports are the documented ones, made inside a function
when the user hands over an object that needs the upper layer."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "workbench"

# bottom to top (docs/ARCHITECTURE.md, "The layers")
LAYERS = [("_native", "_config", "_checks", "_files", "distributed"), ("nn",), ("data",),
          ("io",), ("optim",), ("summary",), ("models",), ("spark",), ("tune",), ("runs",),
          ("notebook",), ("server",), ("cli", "__init__", "__main__")]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# (importing file, imported layer): the dispatch by type, BigDL's Module.evaluate(data), and
# BigDL's model.saveModel / Model.load* doors to the readers and writers of io
ALLOWED_UPWARD = {("distributed.py", "spark"), ("nn/module.py", "optim"), ("nn/module.py", "io"),
                  ("nn/graph.py", "io")}


def imported_layers(path):
    """``(line, layer, at module level)`` for every import of a workbench layer in ``path``."""
    package = list(path.relative_to(ROOT).parts[:-1])
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            names = target[:1] or [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("workbench.")]
        else:
            continue
        for name in names:
            if name in RANK:
                yield node.lineno, name, id(node) in top


def test_every_package_module_is_in_a_layer():
    for path in ROOT.iterdir():
        name = path.name.removesuffix(".py")
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            assert name in RANK, f"{path.name} is in no layer of docs/ARCHITECTURE.md"


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_except_the_documented_dispatch(path):
    rel = path.relative_to(ROOT)
    own = rel.parts[0].removesuffix(".py")
    for line, layer, module_level in imported_layers(path):
        if RANK[layer] <= RANK[own] or layer == own:
            continue
        where = f"{rel}:{line} imports {layer}, a layer above {own}"
        assert (rel.as_posix(), layer) in ALLOWED_UPWARD, where
        assert not module_level, where + " at import time"


def test_the_allowed_upward_imports_still_exist():
    """If one goes away, drop it from the list (and from docs/ARCHITECTURE.md)."""
    found = {(p.relative_to(ROOT).as_posix(), layer) for p in ROOT.rglob("*.py")
             for _, layer, _ in imported_layers(p)
             if RANK[layer] > RANK[p.relative_to(ROOT).parts[0].removesuffix(".py")]}
    assert found == ALLOWED_UPWARD
