"""Thread counts chosen for a shared CPU, and where the tests keep their cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.environment import CPU_POLICY_ENV, cache_dir, cpu_threads

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cpus, load, threads", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 2.0, 1), (2, 7.5, 1), (16, 4.3, 12), (16, 4.6, 11)])
def test_threads_are_the_cpus_left_idle_at_least_one(cpus, load, threads):
    assert cpu_threads(cpus, load) == threads


def probe(env: dict, code: str = "import bench") -> dict:
    """What a fresh interpreter that runs ``code`` and then imports torch ends up with."""
    script = (f"import os, json\n{code}\nimport torch\n"
              "print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY'), 'threads': torch.get_num_threads(),"
              " 'var': os.environ.get('OMP_NUM_THREADS'), 'cpus': len(os.sched_getaffinity(0))}))")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def configured(load: float) -> str:
    """Import bench with its own configuration off, then configure for a given load (the real one varies)."""
    return (f"os.environ['{CPU_POLICY_ENV}'] = 'off'\nimport bench.environment as e\n"
            f"del os.environ['{CPU_POLICY_ENV}']\ne.configure_cpu_threads(load={load})")


def test_importing_bench_sets_a_passive_wait_policy_and_the_idle_cpus_as_threads():
    got = probe({})
    assert got["policy"] == "PASSIVE" and 1 <= got["threads"] <= got["cpus"] and got["var"] == str(got["threads"])
    busy, quiet = probe({}, configured(9.0)), probe({}, configured(0.0))
    assert busy["policy"] == quiet["policy"] == "PASSIVE"
    assert (busy["threads"], busy["var"]) == (1, "1")
    assert quiet["threads"] == quiet["cpus"] == int(quiet["var"])


def test_the_users_own_settings_win():
    got = probe({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}, configured(0.0))     # not the idle CPUs
    assert (got["policy"], got["threads"]) == ("ACTIVE", 1)


def test_torch_imported_before_bench_still_gets_the_thread_count():
    got = probe({}, f"import torch\n{configured(9.0)}")
    assert (got["threads"], got["var"]) == (1, "1")


def test_tests_never_use_the_users_cache():
    assert cache_dir() == REPO / "tests" / ".cache"
    assert not cache_dir().is_relative_to(Path.home() / ".cache")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(cache_dir() / "any-file")], cwd=REPO)
    assert ignored.returncode == 0


def _fake_rerankers_distribution(root: Path) -> Path:
    """What ``pip install rerankers`` (AnswerDotAI) leaves: the package and its dist-info."""
    (root / "rerankers").mkdir(parents=True)
    (root / "rerankers" / "__init__.py").write_text("from_answerdotai = True\n")
    (root / "rerankers-0.6.0.dist-info").mkdir()
    (root / "rerankers-0.6.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: rerankers\n"
                                                                 "Version: 0.6.0\n")
    return root


@pytest.mark.parametrize("order", ["theirs first", "ours first", "alone"])
def test_pypi_rerankers_beside_ours_is_named_in_one_line(tmp_path, order):
    fake = _fake_rerankers_distribution(tmp_path / "site")
    path = {"theirs first": [fake], "ours first": [REPO, fake], "alone": [REPO]}[order]
    proc = subprocess.run([sys.executable, "-c", "import bench, rerankers.registry; print('ran')"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))})
    if order == "theirs first":
        assert proc.returncode == 1 and "ran" not in proc.stdout
        assert proc.stderr.strip().splitlines()[-1] == (
            f"ImportError: the import name 'rerankers' is {fake / 'rerankers'} (PyPI's rerankers, AnswerDotAI), which "
            f"shadows rerank-bench's rerankers package ({REPO / 'rerankers'}); rerank-bench cannot run beside it: "
            f"pip uninstall rerankers, or install rerank-bench in its own virtual environment")
    elif order == "ours first":
        assert proc.returncode == 0 and proc.stdout == "ran\n"
        clash = [line for line in proc.stderr.splitlines() if "ImportNameClash" in line]
        assert len(clash) == 1 and "PyPI's rerankers 0.6.0 (AnswerDotAI) is installed here but shadowed by " \
                                   f"rerank-bench's rerankers package ({REPO / 'rerankers'})" in clash[0]
    else:
        assert proc.returncode == 0 and proc.stdout == "ran\n" and "rerankers" not in proc.stderr
