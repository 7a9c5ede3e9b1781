"""Every ``python -m bench`` / ``python -m rrpo`` command shown in README.md and docs/*.md parses with the real
command-line parser (flags and choices as they are today), and every ``python benchmarks/...`` script shown exists:
a renamed flag or a removed choice fails here instead of in a user's terminal."""
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:^|\s)(?:torchrun\b.*?\s)?(?:python3? )?-m (bench|rrpo) (.*)$")


def shown_commands(text: str) -> list[str]:
    """Command lines of fenced blocks (backslash continuations joined) and of inline code spans."""
    lines = []
    for language, block in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S):
        if language in ("", "bash", "sh", "console"):        # shell blocks (a python block's comments are prose)
            lines += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += re.findall(r"`([^`\n]*python3? -m (?:bench|rrpo) [^`\n]*)`", prose)
    return [line for line in lines if COMMAND.search(line) and not line.lstrip().startswith("#")]


def argv_of(line: str) -> tuple[str, list[str]]:
    module, rest = COMMAND.search(line).groups()
    rest = rest.split(" && ")[0].split(" | ")[0]
    return module, shlex.split(rest, comments=True)


CASES = [(page.relative_to(ROOT).as_posix(), line) for page in PAGES
         for line in shown_commands(page.read_text(encoding="utf-8"))]


def test_the_pages_show_commands():
    assert {page for page, _ in CASES} >= {"README.md", "docs/running.md", "docs/rrpo.md", "docs/studies.md"}


@pytest.mark.parametrize("page, line", CASES, ids=[f"{p}:{i}" for i, (p, _) in enumerate(CASES)])
def test_each_shown_command_parses(page, line):
    from bench.cli import build_parser as bench_parser
    from rrpo.__main__ import build_parser as rrpo_parser

    module, argv = argv_of(line)
    parser = bench_parser() if module == "bench" else rrpo_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{page}: `{line.strip()}` does not parse (exit {exc.code})")


def test_each_shown_benchmark_script_exists():
    scripts = {m for page in PAGES for m in re.findall(r"python3? (benchmarks/[\w./-]+\.(?:py|sh))",
                                                       page.read_text(encoding="utf-8"))}
    assert scripts and all((ROOT / s).is_file() for s in scripts), sorted(s for s in scripts
                                                                          if not (ROOT / s).is_file())


def test_the_config_file_format_of_docs_configuration_md_is_the_code_s(tmp_path):
    """docs/configuration.md's table names every section and its fields as ``bench.sections`` has them, and its
    YAML example is a ``--config`` file ``bench run`` reads and validates into those sections."""
    from dataclasses import fields

    from bench.cli import config_from_args, parse_run_args
    from bench.sections import SECTIONS

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `(\w+)` \| ([\w, ]+) \|$", page, re.M))
    assert {section: value.split(", ") for section, value in table.items()} == \
        {section: [f.name for f in fields(cls)] for section, cls in SECTIONS.items()}
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    assert len(blocks) == 1
    path = tmp_path / "run.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    config = config_from_args(*parse_run_args(["run", "--config", str(path), "--pool", "30"]))
    config.validate()
    assert config.components.rerankers == ["none", "minilm", "rankgpt"]
    assert config.components.reranker_args == {"rankgpt": {"window": 10, "stride": 5}}
    assert (config.data.pool, config.data.first_stage_args) == (30, {"bm25": {"k1": 0.9, "b": 0.4}})
