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
