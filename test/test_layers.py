"""The rooms of the package and their layers: imports only point down (README, "Layout").

Parses every module of ``gaussvae_ros`` (imports inside functions included) and fails on
* a module in a folder no layer names (a new room must be given its place here);
* an import from a higher layer;
* an import circle between packages (also between packages of one layer);
* an import of another package's private name (``_name``, or a ``_module``);
* ``rclpy`` imported outside the nodes and the applications.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gaussvae_ros"

#: Package -> layer. A package may import its own layer and the layers below, never above.
LAYERS = {
    "core": 0, "bag": 0, "store": 0,  # the ground: import nothing of the package outside themselves
    "vae": 1,                           # the models and their training
    "codecs": 2,                        # bytes in, bytes out
    "pipeline": 3, "eval": 3,           # frame -> memory; rate-distortion of the codecs
    "nodes": 4,                         # ROS only
    "apps": 5,                          # demo, player, graph runner, bench, replay driver
    "cli": 6,                           # the ``gaussvae`` command
}
#: Packages that may import rclpy.
ROS_PACKAGES = {"nodes", "apps", "cli"}


def package_of(module: str) -> str | None:
    """``gaussvae_ros.X...`` -> ``X`` (``""`` for the top-level package), None outside the package."""
    parts = module.split(".")
    if parts[0] != "gaussvae_ros":
        return None
    return parts[1] if len(parts) > 1 else ""


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path):
    """``(line, imported module, imported names)`` of every import in ``path``, relative ones resolved."""
    name = module_name(root, path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = tuple(a.name for a in node.names)
            if node.module is None:  # from . import a, b: each name may be a module
                for n in names:
                    yield node.lineno, f"{target}.{n}", ()
            else:
                yield node.lineno, target, names


def violations(root: Path = PACKAGE, layers: dict = LAYERS, ros_packages: set = ROS_PACKAGES) -> list[str]:
    """Everything :data:`LAYERS` forbids in the package at ``root`` (see the module docstring)."""
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        where = f"{path.relative_to(root.parent)}"
        source = package_of(module_name(root, path))
        if source and source not in layers:
            problems.append(f"{where}: package {source!r} has no layer")
            continue
        for line, target, names in imports_of(root, path):
            top = target.split(".")[0]
            if top == "rclpy" and source not in ros_packages:
                problems.append(f"{where}:{line}: imports rclpy outside {', '.join(sorted(ros_packages))}")
            dest = package_of(target)
            if dest is None or dest == source or dest == "" or source == "":
                continue
            if dest not in layers:
                problems.append(f"{where}:{line}: imports {target} of package {dest!r}, which has no layer")
                continue
            edges.setdefault(source, set()).add(dest)
            if layers[dest] > layers[source]:
                problems.append(f"{where}:{line}: {source} (layer {layers[source]}) imports {target} from a "
                                f"higher layer ({dest}, {layers[dest]})")
            private = [p for p in target.split(".")[2:] if p.startswith("_") and not p.startswith("__")]
            private += [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"{where}:{line}: imports {dest}'s private {', '.join(private)} ({target})")
    problems += [f"import circle between packages: {' -> '.join(c)}" for c in _circles(edges)]
    return problems


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per package that lies on one (depth-first search of the package graph)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_imports_point_down_the_layers():
    assert violations() == []


def test_every_package_has_a_layer_and_says_what_it_holds():
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        assert folder.name in LAYERS, folder
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 2, f"{folder.name}/__init__.py says what the room holds"


@pytest.mark.parametrize("module, source, expected", [
    ("core/bad.py", "from gaussvae_ros.nodes import convert\n", "higher layer"),
    ("codecs/bad.py", "from gaussvae_ros.core._native import lib\n", "private"),
    ("codecs/bad2.py", "from gaussvae_ros.core.render import _project\n", "private"),
    ("store/bad.py", "from gaussvae_ros.bag import images\n", "import circle"),
    ("pipeline/bad.py", "import rclpy\n", "rclpy"),
    ("attic/bad.py", "import os\n", "no layer"),
    ("core/bad3.py", "def f():\n    from ..apps import demo\n", "higher layer"),
])
def test_the_layer_check_catches_bad_imports(tmp_path, module, source, expected):
    root = tmp_path / "gaussvae_ros"
    for package in ("core", "bag", "store", "codecs", "pipeline", "nodes", "apps"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text('"""A room."""\n')
    (root / "__init__.py").write_text("")
    (root / "bag" / "uses_store.py").write_text("from gaussvae_ros.store import records\n")
    (root / "nodes" / "node.py").write_text("import rclpy\nfrom gaussvae_ros.pipeline import memory\n")
    assert violations(root) == []  # the tree without the bad module is fine ...
    (root / module).parent.mkdir(exist_ok=True)
    (root / module).write_text(source)
    found = violations(root)
    assert found and all(expected in p for p in found), found  # ... and the one bad import is caught
