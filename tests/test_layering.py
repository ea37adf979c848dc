"""The import graph: pretext is the ground floor, downstream builds on it, benchmarks on both; no
library module imports an entry script, and no file edits sys.path."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("pretext", "downstream", "benchmarks")


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def is_entry_script(path: Path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text()


def sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]


def test_pretext_imports_neither_downstream_nor_benchmarks_and_downstream_not_benchmarks():
    bad = []
    for path in sources():
        pkg = path.parent.name
        below = {"pretext": ("downstream", "benchmarks"), "downstream": ("benchmarks",), "benchmarks": ()}[pkg]
        bad += [f"{path.relative_to(ROOT)} imports {m}" for m in imports(path) if m.split(".")[0] in below]
    assert not bad, bad


def test_no_library_module_of_pretext_or_downstream_imports_an_entry_script():
    entry = {f"{p.parent.name}.{p.stem}" for p in sources() if is_entry_script(p)}
    assert {"pretext.train", "downstream.linear_probe", "benchmarks.suite"} <= entry  # the check sees them
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in sources() if p.parent.name != "benchmarks"
           for m in imports(p) & entry]  # fmt: skip
    assert not bad, bad


def test_no_file_edits_sys_path():
    files = sources() + sorted((ROOT / "tests").glob("*.py"))
    assert not [p for p in files if "sys.path.insert" in p.read_text() and p.name != "test_layering.py"]
