"""report.html in a real browser: Debian's chromium driven by Playwright (its own browser download is unreachable
here, so the system one is launched by path). Playwright comes with the ``dev`` extra; the browser is a system
package. Without it these tests skip on a user's machine (README command 2 passes without root) and fail in CI
(``CI`` set), where ``.ci/run`` installs it, so CI always runs them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.html_report import embed_json, write_study_html
from bench.runner import report_run_folder
from tests.llm_server import ScriptedLLMServer
from tests.test_runner import ITEMS, bench_cmd, only_dir, records, run, scripted_reply, write_dataset

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
HOSTILE = ('<script>window.__pwned=1</script>"\'&amp; \u202eevil\u202c \u2028 </script>'
           '<img src=x onerror="window.__pwned=1">')


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('the browser tests need Playwright: python -m pip install "rerank-bench[dev]"')
    if not Path(CHROMIUM).exists():
        missing = f"the browser tests need {CHROMIUM}: apt-get install -y chromium"
        pytest.fail(missing) if os.environ.get("CI") else pytest.skip(missing)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A page of the report with its console errors and uncaught exceptions collected."""

    def __init__(self, browser, path: Path, view: str = "leaderboard"):
        self.errors: list[str] = []
        self.page = browser.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(f"{path.as_uri()}#{view}")
        self.page.wait_for_selector("body[data-ready='1']")

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_text_contents()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A real run: 8 questions, rerankers none, random and oracle over 2 candidates each, the reader and judge on the
    local scripted server (the reader answers with the code in the one passage it sees)."""
    root = tmp_path_factory.mktemp("html")
    dataset = write_dataset(root)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        cmd = bench_cmd(dataset, srv.base_url, root / "out", root / "cache")
        cmd[cmd.index("random") + 1:cmd.index("random") + 1] = ["oracle"]
        run(cmd)
    return only_dir(root / "out")


def differing(run_dir: Path, a: str, b: str, metric: str) -> dict[str, float]:
    """qid -> a's value minus b's on ``metric``, for the questions where they differ (from records.jsonl)."""
    values = {(r["reranker"], r["qid"]): r["metrics"][metric] for r in records(run_dir) if r["status"] == "ok"}
    return {q: values[(a, q)] - values[(b, q)] for (name, q) in values
            if name == a and (b, q) in values and values[(a, q)] != values[(b, q)]}


def test_rebuild_gives_the_same_bytes(toy_run, tmp_path):
    written = (toy_run / "report.html").read_bytes()
    out = tmp_path / "again.html"
    proc = run([sys.executable, "-m", "bench", "report", str(toy_run), "--html", "--out", str(out)])
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes() == written
    bad = subprocess.run([sys.executable, "-m", "bench", "report", str(toy_run), "--html", "--out",
                          str(tmp_path / "missing" / "r.html")], capture_output=True, text=True)
    assert (bad.returncode, bad.stderr) == (2, f"error: --out {tmp_path}/missing/r.html: its folder "
                                                f"{tmp_path}/missing does not exist\n")
    (toy_run / "report.html").unlink()
    run([sys.executable, "-m", "bench", "report", str(toy_run)])
    assert (toy_run / "report.html").read_bytes() == written


def test_passage_texts_are_stored_once_per_run(toy_run):
    html = (toy_run / "report.html").read_text()
    # a0's text: in the rankings of all three rerankers, once in the page
    assert html.count("The code of amber is zq0x.") == 1
    page_itself = re.sub(r'<script id="report-data".*?</script>', "", html, flags=re.S)
    assert re.findall(r"https?://[^\s\"']+", page_itself) == ["http://www.w3.org/2000/svg"]   # a namespace, not fetched


def test_page_loads_without_console_errors_in_every_view(browser, toy_run):
    page = Page(browser, toy_run / "report.html")
    for view in ("compare", "questions"):
        page.page.click(f"#nav-{view}")
    page.page.click("#qlist .qitem >> nth=3")
    picked = [f"What is the code of {ITEMS[3]}?"]
    assert page.texts("#qlist .qitem.sel") == page.texts("#question .question-text") == picked
    assert page.page.evaluate("location.hash") == "#questions/3"
    page.page.click("#question details summary >> nth=0")
    page.page.wait_for_selector("#question .passages.rest li")      # the folded rest of the ranking, opened
    assert page.errors == []
    assert [url.split("#")[0] for url in page.requests] == [(toy_run / "report.html").as_uri()]   # nothing fetched


def test_sorting_a_column_reorders_the_rows(browser, toy_run):
    page = Page(browser, toy_run / "report.html")
    column = lambda j: page.texts(f"table.leaderboard tbody tr td:nth-child({j})")
    assert column(3) == ["none", "random", "oracle"]          # leaderboard.csv's order
    page.page.click("table.leaderboard th:text-is('reranker')")
    assert column(3) == ["none", "oracle", "random"]
    page.page.click("table.leaderboard th:text-is('reranker')")
    assert column(3) == ["random", "oracle", "none"]
    headers = page.texts("table.leaderboard th")
    page.page.click("table.leaderboard th:text-is('F1 (primary)')")    # the primary metric is marked
    f1 = [float(t.split()[0].rstrip("†")) for t in column(headers.index("F1 (primary)") + 1)]
    assert f1 == sorted(f1, reverse=True) and f1[-1] < f1[0]
    assert column(3)[-1] == "random"


def test_compare_lists_exactly_the_questions_where_the_two_rerankers_differ(browser, toy_run):
    expected = differing(toy_run, "random", "none", "F1")
    assert expected and len(expected) < 8            # the random reranker changed some answers, not all
    page = Page(browser, toy_run / "report.html", "compare")
    # by default the best by the primary metric (oracle: F1 1.0, random 0.75) against the baseline
    assert [page.page.input_value(f"select[aria-label='reranker {x}']") for x in "AB"] == ["oracle", "none"]
    page.page.select_option("select[aria-label='reranker A']", "random")
    qids = page.texts("table.differ tbody td:nth-child(1)")
    diffs = [float(t) for t in page.texts("table.differ tbody td:nth-child(5)")]
    assert sorted(qids) == sorted(expected)
    assert diffs == sorted(diffs, reverse=True)      # sorted by the difference
    assert dict(zip(qids, diffs)) == pytest.approx(expected, abs=5e-4)
    f1_row = page.texts("table.wtl tbody tr:has(td:text-is('F1 (primary)')) td")
    wins, ties, losses = (int(x) for x in f1_row[1:4])
    assert (wins, losses) == (sum(d > 0 for d in expected.values()), sum(d < 0 for d in expected.values()))
    assert wins + ties + losses == 8


def test_opening_a_question_shows_its_passages_answer_and_verdict(browser, toy_run):
    qid = sorted(differing(toy_run, "random", "none", "F1"))[0]
    page = Page(browser, toy_run / "report.html", "compare")
    page.page.select_option("select[aria-label='reranker A']", "random")
    page.page.click(f"table.differ tbody td:nth-child(1) span:text-is('{qid}')")
    i = int(qid[1:])
    assert page.texts("#question .question-text") == [f"What is the code of {ITEMS[i]}?"]
    cards = page.page.locator("#question .reranker-card")
    assert cards.count() == 3
    by_name = {r["reranker"]: r for r in records(toy_run) if r["qid"] == qid}
    for j in range(3):
        card = cards.nth(j)
        name = card.locator("h3").first.text_content().removeprefix("reranker ")
        rec = by_name[name]
        top = card.locator(".passages.top li code").all_text_contents()
        assert top == rec["ranking"][:1]
        assert card.locator(".answer").text_content() == rec["answer"]
        verdict = "correct" if rec["metrics"]["judge"] == 1.0 else "incorrect"
        assert card.locator(".verdict b").text_content() == verdict
        assert json.loads(card.locator("pre.raw").text_content())["verdict"] == verdict
    assert page.errors == []


def write_run(folder: Path, recs: list[dict], passages: list[dict] = (), questions: list[dict] = ()) -> Path:
    """A handmade run folder from its records (and passages, questions), reported as ``bench report`` does."""
    folder.mkdir()
    for name, rows in (("records.jsonl", recs), ("passages.jsonl", passages), ("questions.jsonl", questions)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "config.json").write_text(json.dumps({"baseline": "none", "primary_metric": "F1", "top_k": 1,
                                                    "n_resamples": 200}))
    report_run_folder(folder)
    return folder / "report.html"


def record(reranker: str, qid: str, f1: float, **fields) -> dict:
    return {"dataset": "ds", "reranker": reranker, "reader": "rd", "qid": qid, "question": f"question {qid}",
            "gold_answers": ["gold"], "ranking": ["d1"], "answer": "gold" if f1 else "other",
            "metrics": {"nDCG@10": f1, "F1": f1}, "status": "ok", "error": None, "info": {}, **fields}


def test_a_dagger_names_its_test_and_holm_family(browser, tmp_path):
    # 12 questions: "better" answers all of them, the baseline none; "same" answers as the baseline does
    recs = [record(name, f"q{i}", f1) for name, f1 in (("none", 0.0), ("better", 1.0), ("same", 0.0))
            for i in range(12)]
    page = Page(browser, write_run(tmp_path / "run", recs))
    rows = page.page.locator("table.leaderboard tbody tr")
    assert rows.nth(2).locator(".dagger").count() == 0 and rows.nth(0).locator(".dagger").count() == 0
    daggers = rows.nth(1).locator(".dagger")
    assert daggers.count() == 2                                     # nDCG@10 and F1
    tips = [daggers.nth(j).get_attribute("title") for j in range(2)]
    # exact McNemar: 12 discordant pairs all one way, p = 2 / 2^12; Holm over 2 rerankers (nDCG@10), or over the
    # answer-metric family {F1} x {better, same} (F1): the larger p of "same" is 1, so better's p is doubled
    p = 2 / 2 ** 12
    assert tips[0] == (f"differs from none: exact McNemar test, p = {p:.4g}, Holm-corrected p = {2 * p:.4g} < 0.05; "
                       f"Holm family: nDCG@10 across the 2 reranker(s)")
    assert tips[1] == (f"differs from none: exact McNemar test, p = {p:.4g}, Holm-corrected p = {2 * p:.4g} < 0.05; "
                       f"Holm family: answer metrics {{F1}} × rerankers {{better, same}} (2 tests)")
    assert page.errors == []


def test_long_lists_render_lazily(browser, tmp_path):
    recs = [record(name, f"q{i:03d}", float(name == "better" or i % 2)) for name in ("none", "better")
            for i in range(250)]
    page = Page(browser, write_run(tmp_path / "run", recs), "questions")
    assert page.page.locator("#qlist .qitem").count() == 100
    from playwright.sync_api import expect

    page.page.locator("#qlist .sentinel").scroll_into_view_if_needed()
    # polled from outside the page: its Content-Security-Policy refuses the eval that wait_for_function needs
    expect(page.page.locator("#qlist .qitem")).to_have_count(200)
    page.page.click("#nav-compare")            # "better" wins the 125 questions "none" gets wrong
    assert page.texts("#differ-count") == [" 125 of 250 questions"]
    assert page.page.locator("table.differ tbody tr").count() == 100
    assert page.errors == []


def hostile_run(folder: Path) -> Path:
    """A handmade run folder whose every text field is hostile: scripts, ``</script>``, quotes, right-to-left
    overrides, a line separator, a 1 MB passage; one failed query."""
    big = "x" * 1_000_000 + HOSTILE
    passages = [{"dataset": HOSTILE, "docid": "d1", "title": HOSTILE, "text": HOSTILE},
                {"dataset": HOSTILE, "docid": "</script>", "title": "", "text": big}]
    questions = [{"dataset": HOSTILE, "qid": "q1", "qrels": {"d1": 1}, "candidates": ["d1", "</script>"]}]
    recs = []
    for reranker, ranking, f1 in (("none", ["d1", "</script>"], 1.0), (HOSTILE, ["</script>", "d1"], 0.0)):
        recs.append({"dataset": HOSTILE, "reranker": reranker, "reader": HOSTILE, "qid": "q1", "question": HOSTILE,
                     "gold_answers": [HOSTILE], "ranking": ranking, "answer": HOSTILE,
                     "metrics": {"nDCG@10": f1, "F1": f1}, "status": "ok", "error": None,
                     "info": {"judge": {"valid": False, "reason": HOSTILE, "raw": HOSTILE}, "prompt": HOSTILE}})
        recs += [{**recs[-1], "qid": f"q{i}", "question": f"plain question {i}", "info": {}} for i in (3, 4)]
    recs.append({**recs[0], "qid": "q2", "status": "failed", "error": HOSTILE, "metrics": {"nDCG@10": 0.5}})
    return write_run(folder, recs, passages, questions)


def test_embedded_json_cannot_close_its_script_element():
    data = {"a": HOSTILE, "b": ["</script>", "<!--", "\u2028\u2029"], "c": float("nan")}
    text = embed_json(data)
    assert not any(ch in text for ch in "<>&\u2028\u2029")
    assert json.loads(text) == {**data, "c": None}


def test_hostile_text_stays_text(browser, tmp_path):
    path = hostile_run(tmp_path / "hostile")
    html = path.read_text()
    assert html.count("</script>") == 2                  # the data block's and the page script's, none from the data
    page = Page(browser, path, "questions/0")
    assert page.page.evaluate("window.__pwned") is None
    assert page.texts("#question .question-text") == [HOSTILE]
    assert page.texts("#question .gold") == [HOSTILE]
    assert sorted(page.texts("#question .answer")) == [HOSTILE, HOSTILE]
    assert page.page.locator("#question img").count() == 0
    shown = page.texts("#question .passage-text")
    assert HOSTILE in shown and "x" * 300 + "…" in shown     # the 1 MB passage cut
    page.page.click("#question .passage-text + button.link")
    assert len(page.texts("#question .passage-text")[1]) == 1_000_000 + len(HOSTILE)
    page.page.click("#nav-compare")
    assert page.texts("select[aria-label='reranker A'] option") == ["none", HOSTILE]
    page.page.click("#nav-leaderboard")
    assert page.texts("table.leaderboard td:nth-child(3)") == ["none", HOSTILE]
    page.page.click("#nav-questions")
    page.page.check("#filter-failed")
    assert page.texts("#qlist .qitem") == [HOSTILE]       # only q2 failed
    assert page.page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_study_page_shows_its_table_plot_and_runs(browser, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "study"
    (folder / "runs" / "r1").mkdir(parents=True)
    (folder / "table.csv").write_text("cell,F1_gain\nk=1,0.25\nk=2,-0.5\nk=3,0.125\n")
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([1, 2, 3], [0.25, -0.5, 0.125])
    fig.savefig(folder / "depth_curve.png")
    plt.close(fig)
    path = write_study_html(folder, "Study: depth", HOSTILE, "depth_curve.png", {"k=1": folder / "runs" / "r1"})
    page = Page(browser, path, "study")
    assert page.texts("table.study tbody td:nth-child(1)") == ["k=1", "k=2", "k=3"]
    page.page.click("table.study th:text-is('F1_gain')")
    assert page.texts("table.study tbody td:nth-child(1)") == ["k=2", "k=3", "k=1"]
    assert page.page.evaluate("document.querySelector('img.plot').naturalWidth") == 200
    assert page.page.locator("a", has_text="k=1").get_attribute("href") == "runs/r1/report.html"
    assert page.page.evaluate("window.__pwned") is None and page.errors == []
