"""QA sets in their release formats: each fixture follows the published layout of its source (named in the
comment), loads with its gold answers and aliases, and MuSiQue / 2WikiMultihopQA run end to end with ``oracle``
putting the supporting paragraphs first."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.errors import UserError


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def paragraph(idx, title, text, supporting):
    return {"idx": idx, "title": title, "paragraph_text": text, "is_supporting": supporting}


# MuSiQue v1.0 (github.com/StonyBrookNLP/musique, musique_ans_v1.0_dev.jsonl); real files have 20 paragraphs
MUSIQUE = [
    {"id": "2hop__1_2", "paragraphs": [
        paragraph(0, "Grant's First Stand", "Grant's First Stand is a jazz album.", False),
        paragraph(1, "Miquette Giraudy", "Miquette Giraudy is married to Steve Hillage.", True),
        paragraph(2, "Noise", "Unrelated text.", False),
        paragraph(3, "Green (album)", "Green is an album by Steve Hillage.", True)],
     "question": "Who is the spouse of the Green performer?",
     "question_decomposition": [{"id": 1, "question": "Green >> performer", "answer": "Steve Hillage",
                                 "paragraph_support_idx": 3},
                                {"id": 2, "question": "#1 >> spouse", "answer": "Miquette Giraudy",
                                 "paragraph_support_idx": 1}],
     "answer": "Miquette Giraudy", "answer_aliases": ["M. Giraudy"], "answerable": True},
    {"id": "2hop__3_4", "paragraphs": [paragraph(0, "A", "a text", True), paragraph(1, "B", "b text", False)],
     "question": "Unanswerable one?", "question_decomposition": [], "answer": "x", "answer_aliases": [],
     "answerable": False},
    {"id": "2hop__5_6", "paragraphs": [paragraph(0, "C", "c text", False), paragraph(1, "D", "d text", True),
                                       paragraph(2, "E", "e text", True)],
     "question": "Second question?", "question_decomposition": [], "answer": "d", "answer_aliases": [],
     "answerable": True},
]

# 2WikiMultihopQA (github.com/Alab-NII/2wikimultihop, dev.json; answer_id from data_ids_april7.zip)
TWOWIKI = [
    {"_id": "8813f87c0bdd11eba7f7acde48001122", "type": "compositional",
     "question": "Who is the mother of the director of film Polish-Russian War (Film)?",
     "context": [["Maheen Khan", ["Maheen Khan is a Pakistani fashion designer.", " She has done many shows."]],
                 ["Polish-Russian War (film)", ["Polish-Russian War is a 2009 film.",
                                                " It was directed by Xawery Żuławski."]],
                 ["Xawery Żuławski", ["Xawery Żuławski is a Polish film director.",
                                      " His mother is Małgorzata Braunek."]]],
     "supporting_facts": [["Polish-Russian War (film)", 1], ["Xawery Żuławski", 1]],
     "evidences": [["Polish-Russian War", "director", "Xawery Żuławski"],
                   ["Xawery Żuławski", "mother", "Małgorzata Braunek"]],
     "answer": "Małgorzata Braunek", "answer_id": "Q274545"},
    {"_id": "9913f87c0bdd11eba7f7acde48001133", "type": "comparison",
     "question": "Which film came out first, Blind Shaft or The Mask Of Fu Manchu?",
     "context": [["Blind Shaft", ["Blind Shaft is a 2003 film."]], ["Other", ["Not relevant."]],
                 ["The Mask of Fu Manchu", ["The Mask of Fu Manchu is a 1932 film."]]],
     "supporting_facts": [["Blind Shaft", 0], ["The Mask of Fu Manchu", 0]],
     "evidences": [["Blind Shaft", "publication date", "2003"], ["The Mask of Fu Manchu", "publication date",
                                                                  "1932"]],
     "answer": "The Mask Of Fu Manchu", "answer_id": ""},
]
TWOWIKI_ALIASES = [{"Q_id": "Q274545", "aliases": ["Malgorzata Braunek"], "demonyms": []},
                   {"Q_id": "Q1", "aliases": ["universe"], "demonyms": []}]


def test_musique_release_file(tmp_path):
    ds = load_dataset(str(write_jsonl(tmp_path / "musique_ans_v1.0_dev.jsonl", MUSIQUE)), split="dev")
    assert [(q.qid, q.answers, q.qrels) for q in ds.queries] == [       # the unanswerable one is left out
        ("2hop__1_2", ["Miquette Giraudy", "M. Giraudy"], {"2hop__1_2:1": 1, "2hop__1_2:3": 1}),
        ("2hop__5_6", ["d"], {"2hop__5_6:1": 1, "2hop__5_6:2": 1})]
    assert ds.candidates["2hop__1_2"] == ["2hop__1_2:0", "2hop__1_2:1", "2hop__1_2:2", "2hop__1_2:3"]
    assert (ds.corpus["2hop__1_2:3"].title, ds.corpus["2hop__1_2:3"].text) == \
        ("Green (album)", "Green is an album by Steve Hillage.")


def test_musique_bad_paragraph_is_named(tmp_path):
    bad = json.loads(json.dumps(MUSIQUE[0]))
    del bad["paragraphs"][2]["paragraph_text"]
    path = write_jsonl(tmp_path / "m.jsonl", [MUSIQUE[0], bad])
    with pytest.raises(UserError, match=r"m\.jsonl line 2: paragraphs must be objects with 'title', "
                                        r"'paragraph_text' and 'is_supporting' \(missing 'paragraph_text'\)"):
        load_dataset(str(path))


def test_2wikimultihopqa_with_id_aliases(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(TWOWIKI, ensure_ascii=False))
    ds = load_dataset(str(path), split="dev")
    q = ds.queries[0]
    assert (q.answers, q.qrels) == (["Małgorzata Braunek"], {f"{q.qid}:1": 1, f"{q.qid}:2": 1})
    write_jsonl(tmp_path / "id_aliases.json", TWOWIKI_ALIASES)
    assert [q.answers for q in load_dataset(str(path)).queries] == [["Małgorzata Braunek", "Malgorzata Braunek"],
                                                                    ["The Mask Of Fu Manchu"]]


def test_nq_open(tmp_path):
    # NQ-open (google-research-datasets/natural-questions, nq_open/NQ-open.dev.jsonl): no ids
    path = write_jsonl(tmp_path / "NQ-open.dev.jsonl", [
        {"question": "when was the last time anyone was on the moon", "answer": ["14 December 1972 UTC",
                                                                                "December 1972"]},
        {"question": "who wrote he ain't heavy he's my brother lyrics", "answer": ["Bobby Scott", "Bob Russell"]}])
    ds = load_dataset(str(path))
    assert [(q.qid, q.answers) for q in ds.queries] == [("0", ["14 December 1972 UTC", "December 1972"]),
                                                        ("1", ["Bobby Scott", "Bob Russell"])]
    assert ds.corpus == {} and ds.candidates == {}


def test_triviaqa(tmp_path):
    # TriviaQA (nlp.cs.washington.edu/triviaqa, unfiltered-web-dev.json), SearchResults/EntityPages abridged
    path = tmp_path / "unfiltered-web-dev.json"
    path.write_text(json.dumps({"Data": [{
        "Answer": {"Aliases": ["Sunset Blvd", "Sunset Boulevard", "Sunset Boulevard"],
                   "MatchedWikiEntityName": "Sunset Boulevard", "NormalizedAliases": ["sunset blvd"],
                   "NormalizedMatchedWikiEntityName": "sunset boulevard", "NormalizedValue": "sunset boulevard",
                   "Type": "WikipediaEntity", "Value": "Sunset Boulevard"},
        "EntityPages": [], "Question": "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
        "QuestionId": "tc_33", "QuestionSource": "http://www.quiz-zone.co.uk/", "SearchResults": []}],
        "Domain": "Unfiltered", "Split": "dev", "Version": 1.0, "VersionDate": "2017-05-04"}))
    [q] = load_dataset(str(path)).queries
    assert (q.qid, q.answers) == ("tc_33", ["Sunset Boulevard", "Sunset Blvd"])


def test_ambignq_every_interpretation_is_gold(tmp_path):
    # AmbigNQ light (nlp.cs.washington.edu/ambigqa, dev_light.json)
    path = tmp_path / "dev_light.json"
    path.write_text(json.dumps([{"id": "-4469503464110108318", "question": "When did the simpsons first air?",
                                 "annotations": [
                                     {"type": "multipleQAs", "qaPairs": [
                                         {"question": "When did the Simpsons first air as a short?",
                                          "answer": ["April 19, 1987"]},
                                         {"question": "When did the Simpsons first air as a series?",
                                          "answer": ["December 17, 1989", "1989"]}]},
                                     {"type": "singleAnswer", "answer": ["1989"]}]}]))
    [q] = load_dataset(str(path)).queries
    assert q.answers == ["April 19, 1987", "December 17, 1989", "1989"]


def test_popqa(tmp_path):
    # PopQA (huggingface.co/datasets/akariasai/PopQA, test.tsv)
    header = ["id", "subj", "prop", "obj", "subj_id", "prop_id", "obj_id", "s_aliases", "o_aliases", "s_uri",
              "o_uri", "s_wiki_title", "o_wiki_title", "s_pop", "o_pop", "question", "possible_answers"]
    row = ["4222362", "George Rankin", "occupation", "politician", "1850287", "22", "2834605", "[]",
           '["political leader"]', "http://www.wikidata.org/entity/Q5543720",
           "http://www.wikidata.org/entity/Q82955", "George Rankin", "Politician", "142", "25692",
           "What is George Rankin's occupation?", '["politician", "political leader", "political figure"]']
    path = tmp_path / "test.tsv"
    path.write_text("\t".join(header) + "\n" + "\t".join(row) + "\n")
    [q] = load_dataset(str(path)).queries
    assert (q.qid, q.text, q.answers) == ("4222362", "What is George Rankin's occupation?",
                                          ["politician", "political leader", "political figure"])
    path.write_text("\t".join(header) + "\n" + "\t".join(row[:-1] + ["politician"]) + "\n")
    with pytest.raises(UserError, match=r"test\.tsv line 2: possible_answers must be a JSON list"):
        load_dataset(str(path))


def test_dpr_retriever_output_is_questions_with_their_pools(tmp_path):
    # DPR dense_retriever.py output (github.com/facebookresearch/DPR): score is a string there
    path = tmp_path / "nq-dev-dpr.json"
    path.write_text(json.dumps([{"question": "who sings does he love me with reba", "answers": ["Linda Davis"],
                                 "ctxs": [{"id": "11828866", "title": "Does He Love You", "score": "80.8",
                                           "text": "a duet with Linda Davis", "has_answer": True},
                                          {"id": "11828871", "title": "Reba", "score": "79.1",
                                           "text": "country singer", "has_answer": False}]}]))
    ds = load_dataset(str(path))
    assert [(q.qid, q.answers, q.qrels) for q in ds.queries] == [("0", ["Linda Davis"], {"11828866": 1})]
    assert ds.candidates == {"0": ["11828866", "11828871"]} and ds.corpus["11828871"].title == "Reba"


# --- end to end -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["musique", "2wiki"])
def test_release_file_runs_end_to_end_and_oracle_puts_support_first(tmp_path, fixture):
    if fixture == "musique":
        path = write_jsonl(tmp_path / "musique_ans_v1.0_dev.jsonl", MUSIQUE)
        qid, support = "2hop__1_2", {"2hop__1_2:1", "2hop__1_2:3"}
    else:
        path = tmp_path / "dev.json"
        path.write_text(json.dumps(TWOWIKI))
        qid, support = TWOWIKI[0]["_id"], {f"{TWOWIKI[0]['_id']}:1", f"{TWOWIKI[0]['_id']}:2"}
    out = tmp_path / "out"
    assert main(["run", "--datasets", str(path), "--split", "dev", "--first-stage", "given", "--rerankers", "none",
                 "oracle", "--reader", "none", "--output", str(out), "--run-id", "r",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    recs = {(r["reranker"], r["qid"]): r for r in map(json.loads, (out / "r" / "records.jsonl").read_text()
                                                      .splitlines())}
    assert set(recs["oracle", qid]["ranking"][:2]) == support
    assert recs["oracle", qid]["metrics"]["Recall@10"] == 1.0 and recs["oracle", qid]["metrics"]["nDCG@1"] == 1.0
    assert set(recs["none", qid]["ranking"][:2]) != support


@pytest.mark.parametrize("name, content", [
    ("musique_ans_v1.0_dev.json", b'[\n{"id": "2hop_1", "question": "caf\xe9?"}\n]\n'),
    ("popqa.tsv", b"id\tquestion\tpossible_answers\n1\tcaf\xe9?\t[\"a\"]\n"),
])
def test_release_files_that_are_not_utf8_name_the_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_dataset(str(path))
    assert str(err.value) == f"{path} line 2: not UTF-8 text (byte 0xe9); expected a UTF-8 file"
