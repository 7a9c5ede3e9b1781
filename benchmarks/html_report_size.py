"""Size and first-view render time of ``report.html`` for a ``fictional-large`` test run (500 questions × 4
rerankers: none, minilm, rrpo, oracle), in headless Chromium.

    python benchmarks/html_report_size.py [--out results/html-bench] [--repeats 5] [--screenshots docs/img]

The reader and the judge are the local OpenAI-compatible test server (``tests/llm_server.py``): it answers with the
last three words of the first passage it is shown and judges an answer correct when it contains a gold answer (not
cached: ``--llm-cache bypass``). That keeps the run to minutes of CPU (a SmolLM2 reader on 2000 questions takes
about an hour here) while the page holds what a real run's holds: the same rankings and passages (which dominate
its size), an answer, a verdict and a raw judge reply per record. Render time: from navigation start to the end of
the page's script (its ``report-rendered`` mark: the first view built) and to the first contentful paint, for the
leaderboard and for the questions view with one question open; the median over ``--repeats`` fresh pages. The run
folder is resumed when it exists (its rankings and records are kept).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.llm_server import ScriptedLLMServer, prompt_text  # noqa: E402
from tests.test_html_report import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def reply(body: dict) -> str:
    text = prompt_text(body)
    if "Predicted answer:" in text:                      # the judge
        refs = re.search(r"Reference answers.*?:\n(.*)\nPredicted answer: (.*)", text, re.S)
        golds = [g.strip().removeprefix("- ").lower() for g in refs.group(1).splitlines()]
        ok = any(g and g in refs.group(2).lower() for g in golds)
        return json.dumps({"verdict": "correct" if ok else "incorrect", "reason": "scripted: gold in the answer"})
    passage = re.search(r"^\[1\] (?:\(Title: [^)]*\) )?(.*)$", text, re.M)
    return " ".join(passage.group(1).rstrip(".").split()[-3:]) if passage else "unknown"


def make_run(out: Path) -> Path:
    with ScriptedLLMServer(reply=reply) as srv:
        cmd = [sys.executable, "-m", "bench", "run", "--datasets", "fictional-large", "--split", "test",
               "--rerankers", "none", "minilm", "rrpo", "oracle", "--reader", "openai:scripted-reader",
               "--judge", "openai:scripted-judge", "--base-url", srv.base_url, "--api-key-env", "SCRIPTED_KEY",
               "--output", str(out), "--run-id", "fictional-large-html", "--llm-cache", "bypass"]
        subprocess.run(cmd, check=True, env={**os.environ, "SCRIPTED_KEY": "local"}, stdout=subprocess.DEVNULL)
    return out / "fictional-large-html"


def render_times(path: Path, repeats: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {f"{view} {what}": [] for view in ("leaderboard", "questions/0")
                                     for what in ("script", "paint")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            for view in ("leaderboard", "questions/0"):
                page = browser.new_page()
                page.goto(f"{path.as_uri()}#{view}")
                page.wait_for_selector("body[data-ready='1']")
                page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
                script, paint = page.evaluate("[performance.getEntriesByName('report-rendered')[0].startTime, "
                                              "performance.getEntriesByName('first-contentful-paint')[0].startTime]")
                times[f"{view} script"].append(script / 1000)
                times[f"{view} paint"].append(paint / 1000)
                page.close()
        browser.close()
    return {view: statistics.median(t) for view, t in times.items()}


def screenshots(path: Path, folder: Path) -> None:
    """The leaderboard, and the question on which rrpo and minilm differ most (opened from the compare view)."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(f"{path.as_uri()}#leaderboard")
        page.wait_for_selector("body[data-ready='1']")
        page.evaluate("document.querySelector('th.primary').scrollIntoView({inline: 'center'})")   # in view
        page.screenshot(path=str(folder / "html-report-leaderboard.png"))
        page.click("#nav-compare")
        page.select_option("select[aria-label='reranker A']", "rrpo")
        page.select_option("select[aria-label='reranker B']", "minilm")
        page.click("table.differ tbody tr >> nth=0")
        page.wait_for_selector("#question")
        page.screenshot(path=str(folder / "html-report-question.png"))
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/html-bench")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--screenshots", metavar="DIR", help="also save the two screenshots of docs/html-report.md here")
    args = ap.parse_args()
    run_dir = make_run(Path(args.out))
    path = run_dir / "report.html"
    n_records = sum(1 for _ in (run_dir / "records.jsonl").open())
    times = render_times(path, args.repeats)
    if args.screenshots:
        screenshots(path, Path(args.screenshots))
    print(f"{path}: {n_records} records, {path.stat().st_size / 1e6:.2f} MB")
    for name, seconds in times.items():
        print(f"  {name}: {seconds:.2f} s")
    print(f"(median of {args.repeats} fresh pages, headless Chromium {CHROMIUM}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
