"""The layers point one way (pyproject.toml's [tool.importlinter] contract, imports inside functions included):
`lint-imports` passes, and an upward import added to a copy of the tree breaks it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("importlinter")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_layers_contract_is_kept():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def copy_of_the_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for part in ("bench", "rerankers", "rrpo"):
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "checkpoints"))
    shutil.copy(REPO / "pyproject.toml", copy)
    return copy


def test_an_upward_import_inside_a_function_breaks_it(tmp_path):
    copy = copy_of_the_tree(tmp_path)
    with (copy / "bench" / "metrics.py").open("a") as f:
        f.write("\n\ndef _upward():\n    from bench.runner import Runner\n\n    return Runner\n")
    proc = lint_imports(copy)
    assert proc.returncode == 1
    assert "bench.metrics is not allowed to import bench.runner" in proc.stdout


def test_a_cycle_between_sibling_modules_of_bench_data_breaks_it(tmp_path):
    """loaders -> catalog -> loaders, hidden inside a function (as it was before bench.data was made acyclic)."""
    copy = copy_of_the_tree(tmp_path)
    with (copy / "bench" / "data" / "loaders.py").open("a") as f:
        f.write("\n\ndef _cycle():\n    from bench.data.catalog import local_copy\n\n    return local_copy\n")
    proc = lint_imports(copy)
    assert proc.returncode == 1
    assert "no cycle between sibling modules (bench.data's included) BROKEN" in proc.stdout
    assert "Contracts: 1 kept, 1 broken." in proc.stdout
