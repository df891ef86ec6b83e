"""The kept mutation list of scripts/mutation_check.py stays applicable: every mutation's text occurs
exactly once in its file and its tests exist (running the mutations is the slow script's job)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("mutation_check", REPO / "scripts" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutation_check", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutation_applies_and_names_existing_tests():
    script = _script()
    assert len(script.MUTATIONS) >= 40
    assert script.check_texts(script.MUTATIONS) == []
    for m in script.MUTATIONS:
        assert m.old != m.new, m.name
        paths = [a.split("::")[0] for i, a in enumerate(m.tests) if not a.startswith("-")
                 and (i == 0 or m.tests[i - 1] != "-k")]
        assert paths and all((REPO / p).exists() for p in paths), (m.name, paths)
    areas = {m.path.split("/")[1] for m in script.MUTATIONS}
    assert {"core", "codecs", "store", "bag", "pipeline", "nodes", "vae"} <= areas
