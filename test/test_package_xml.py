"""package.xml against the code: every ROS package the code and the launch files import is a
declared dependency, every Python library has a rosdep key (apt) or is a pip requirement, nothing
declared is unused; license, LICENSE file and url agree with setup.py. No ROS install needed."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "gaussvae_ros").rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))

#: Python module -> rosdep key, for libraries apt provides (Humble / Jazzy python3-* packages).
ROSDEP_KEYS = {"numpy": "python3-numpy", "scipy": "python3-scipy", "skimage": "python3-skimage",
               "PIL": "python3-pil", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
               "matplotlib": "python3-matplotlib"}
#: Python module -> pip distribution, for libraries apt lacks (requirements.txt only).
PIP_ONLY = {"torch": "torch", "sqlite_utils": "sqlite-utils", "rosbags": "rosbags",
            "constriction": "constriction", "tensorboard": "tensorboard",
            "backports": "backports.zstd", "lz4": "lz4"}  # the last two: what rosbags reads chunks with
#: Python module -> pip distribution of the libraries with a rosdep key.
PIP_NAMES = {"numpy": "numpy", "scipy": "scipy", "skimage": "scikit-image", "PIL": "Pillow",
             "yaml": "PyYAML", "tqdm": "tqdm", "matplotlib": "matplotlib"}
#: Declared dependencies that no Python import names: the launch-file runner, the interfaces, and
#: action_msgs (the goal status types of the action server, which rclpy.action uses).
NOT_IMPORTED = {"ros2launch", "gaussvae_ros_interfaces", "action_msgs"}


def imported_top_modules() -> dict[str, str]:
    """Top-level module -> first place importing it, over the package and launch/ (absolute imports)."""
    found: dict[str, str] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def declared() -> dict[str, set[str]]:
    root = ET.parse(REPO / "package.xml").getroot()
    deps: dict[str, set[str]] = {}
    for tag in ("depend", "exec_depend", "build_depend", "test_depend", "buildtool_depend"):
        deps[tag] = {e.text.strip() for e in root.findall(tag)}
    return deps


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower())
    return names


def test_every_imported_ros_package_is_an_exec_depend():
    deps = declared()
    runtime = deps["depend"] | deps["exec_depend"]
    requirements = requirement_names(REPO / "requirements.txt")
    missing = []
    for module, where in sorted(imported_top_modules().items()):
        if module in sys.stdlib_module_names or module in ("gaussvae_ros", "__future__"):
            continue
        if module in PIP_ONLY:
            if PIP_ONLY[module].lower() not in requirements:
                missing.append(f"{module} ({where}): {PIP_ONLY[module]} not in requirements.txt")
        elif module in ROSDEP_KEYS:
            if ROSDEP_KEYS[module] not in runtime:
                missing.append(f"{module} ({where}): rosdep key {ROSDEP_KEYS[module]} not declared")
            if PIP_NAMES[module].lower() not in requirements:
                missing.append(f"{module} ({where}): {PIP_NAMES[module]} not in requirements.txt")
        elif module not in runtime:  # a ROS package: its Python package has the package's name
            missing.append(f"{module} ({where}): not an exec_depend in package.xml")
    assert missing == []


def test_nothing_declared_is_unused():
    deps = declared()
    imported = set(imported_top_modules())
    used = imported | {ROSDEP_KEYS[m] for m in imported if m in ROSDEP_KEYS} | NOT_IMPORTED
    assert (deps["depend"] | deps["exec_depend"]) - used == set()
    assert "ros2launch" in deps["exec_depend"] and list((REPO / "launch").glob("*.launch.py"))


def test_lint_test_depends_only_with_lint_tests():
    deps = declared()["test_depend"]
    for key, test in (("ament_flake8", "test_flake8.py"), ("ament_pep257", "test_pep257.py"),
                      ("ament_copyright", "test_copyright.py")):
        if key in deps:
            assert (REPO / "test" / test).exists(), f"{key} declared without test/{test}"
    assert (REPO / "test" / "test_flake8.py").exists() and (REPO / "test" / "test_pep257.py").exists()


def test_license_url_and_metadata_agree_with_setup_py():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    setup_py = (REPO / "setup.py").read_text()
    license_ = root.findtext("license").strip()
    assert f'license="{license_}"' in setup_py
    text = (REPO / "LICENSE").read_text()
    assert license_ == "MIT" and text.startswith("MIT License") and "WITHOUT WARRANTY" in text
    assert root.findall("url") and all(u.text.strip().startswith("https://") for u in root.findall("url"))
    version = root.findtext("version").strip()
    assert f'version="{version}"' in setup_py
    assert root.find("export/build_type").text == "ament_python"


def _setup_py_function(name: str):
    """A top-level function of setup.py, without running setup()."""
    tree = ast.parse((REPO / "setup.py").read_text())
    body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
            or (isinstance(n, ast.FunctionDef) and n.name == name)]
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), "setup.py", "exec"), namespace)
    return namespace[name]


def test_rasterizer_is_portable_unless_native_is_asked_for(monkeypatch):
    from gaussvae_ros.core._native import compile_flags

    raster_flags = _setup_py_function("raster_flags")
    monkeypatch.delenv("GAUSSVAE_NATIVE", raising=False)
    assert "-march=native" not in raster_flags() and "-march=native" not in compile_flags()
    monkeypatch.setenv("GAUSSVAE_NATIVE", "1")
    assert "-march=native" in raster_flags() and "-march=native" in compile_flags()
    assert raster_flags() == compile_flags()
