"""The shape of the package: the layers contract (import-linter), no import circles, encodings asked of codecs."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"


def _imports() -> dict[str, set[str]]:
    """Module -> project modules it imports, at any depth (function-level imports included)."""
    mods = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PIPELINE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            edges[m] |= {n for n in names if n in mods and n != m}
    return edges


def test_layers_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pip install -e '.[test]')"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_import_circles_counting_function_level_imports():
    edges = _imports()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(v: str, path: list[str]) -> bool:
        state[v] = 1
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                cycle.extend(path[path.index(w):] + [w] if w in path else [v, w])
                return True
            if w not in state and visit(w, path + [w]):
                return True
        state[v] = 2
        return False

    assert not any(visit(v, [v]) for v in sorted(edges) if v not in state), " -> ".join(cycle)


def test_no_stage_tests_an_encoding_by_name():
    """Adding an encoding is one codec module and one registry line: nothing outside pipeline/codecs asks
    which encoding it is by name (``encoding == "chars"``, ``is_timed``)."""
    pattern = re.compile(r"""encoding\s*(==|!=|in|not in)\s*[("']|is_timed\(|[A-Z_]*ENCODINGS\b""")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in PIPELINE.rglob("*.py") if "codecs" not in p.parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_modules_stay_readable():
    longest = max(PIPELINE.rglob("*.py"), key=lambda p: len(p.read_text().splitlines()))
    assert len(longest.read_text().splitlines()) < 500, longest  # a module one reads in a sitting
