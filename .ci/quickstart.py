"""Print Quickstart command N (1: install and run the benchmark; 2: install and run the tests) exactly as the README
shows it: the line after the comment ``# N. ...`` inside the Quickstart's bash block. CI runs command 2 from here,
and tests/test_quickstart.py checks that there are exactly two."""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_commands(readme: str) -> dict[int, str]:
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = block.splitlines()
    return {int(m.group(1)): lines[i + 1].strip() for i, line in enumerate(lines)
            if (m := re.match(r"# (\d)\. ", line))}


if __name__ == "__main__":
    print(quickstart_commands(README.read_text(encoding="utf-8"))[int(sys.argv[1])])
