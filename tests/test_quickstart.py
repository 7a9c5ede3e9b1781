"""The README's Quickstart: exactly two commands, and CI runs the second one as written."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> dict[int, str]:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / ".ci" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.quickstart_commands((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_quickstart_has_two_commands_the_second_running_the_suite():
    commands = quickstart_commands()
    assert sorted(commands) == [1, 2]
    assert commands[1].endswith("python -m bench run") and commands[2].endswith("python -m pytest")
    assert all(c.startswith("pip install torch==2.13.0 -e ") for c in commands.values())


def test_ci_runs_the_second_command_in_a_new_virtual_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python3 -m venv "$work/venv"' in ci and '. "$work/venv/bin/activate"' in ci
    assert 'command_2="$(python3 "$root/.ci/quickstart.py" 2)"' in ci and 'bash -c "$command_2"' in ci
    assert 'export RERANK_BENCH_CACHE="$work/cache"' in ci
