"""One builder: flags and config files reach the components they configure. Each test observes the value inside the
built component (the reranker's window, the engine's batch size), not in a config object."""
from __future__ import annotations

import json

import pytest

from bench.cli import build_parser, config_from_args
from bench.errors import UserError
from bench.runner import Runner


def runner_for(*flags: str) -> Runner:
    return Runner(config_from_args(build_parser().parse_args(["run", *flags])))


def test_reranker_args_reach_the_listwise_reranker():
    runner = runner_for("--rerankers", "none", "rankzephyr", "rankgpt",
                        "--reranker-args", "rankzephyr:window=20,stride=10",
                        "--reranker-args", "rankgpt:window=6,stride=2,max_new_tokens=7,engine=openai",
                        "--reranker-args", "rankzephyr:engine=openai,tokenizer=none")
    zephyr, gpt = runner.builder.reranker("rankzephyr"), runner.builder.reranker("rankgpt")
    assert (zephyr.window, zephyr.stride, zephyr.engine_kind, zephyr.options.tokenizer) == (20, 10, "openai", None)
    assert (gpt.window, gpt.stride, gpt.max_new_tokens(6), gpt.engine_kind) == (6, 2, 7, "openai")
    assert gpt.identity()["window"] == 6          # what each ranking records
    assert runner.config.identity()["reranker_args"]["rankgpt"] == {"window": "6", "stride": "2",
                                                                    "max_new_tokens": "7", "engine": "openai"}


def test_per_backend_settings_and_batch_size_reach_the_reranker():
    runner = runner_for("--rerankers", "none", "random", "--batch-size", "5", "--reranker-args", "random:batch_size=3")
    assert runner.builder.reranker("none").settings.batch_size == 5
    assert runner.builder.reranker("random").settings.batch_size == 3
    assert runner_for("--rerankers", "none").builder.reranker("none").settings.batch_size == 32   # its own default


def test_runs_without_component_args_keep_their_identity():
    """Run ids of existing runs hold: empty component args stay out of the identity."""
    identity = runner_for().config.identity()
    assert not {"reranker_args", "reader_args", "judge_args", "batch_size"} & set(identity)


@pytest.mark.parametrize("flags, message", [
    (["--reranker-args", "rankgpt:windw=3"], "--reranker-args rankgpt: unknown option 'windw'; valid: checkpoint, "
                                             "device, dtype, batch_size, max_length, prefetch, api_key_env, base_url, "),
    (["--reranker-args", "rankgpt:window=big"], "--reranker-args rankgpt: window='big': expected int"),
    (["--reranker-args", "monot5:window=3"], "--reranker-args monot5: not a component of this run (none, rankgpt)"),
    (["--reader-args", "smollm2:batch_sise=3"], "--reader-args smollm2: unknown option 'batch_sise'; valid: device, "
                                                "dtype, batch_size, "),
    (["--reader-args", "smollm2"], "--reader-args 'smollm2': expected NAME:key=value[,key=value...]"),
])
def test_bad_component_args_fail_in_one_line_naming_the_valid_keys(flags, message):
    with pytest.raises(UserError) as err:
        runner_for("--rerankers", "none", "rankgpt", *flags).config.validate()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_judge_args_reach_the_judges_engine_only():
    runner = runner_for("--reader", "openai:m", "--judge", "openai:j", "--timeout", "30",
                        "--judge-args", "openai:j:timeout=7,max_retries=1", "--base-url", "http://127.0.0.1:9/v1")
    judge_engine, reader_engine = runner.builder.judge().engine.engine, runner.builder.reader("openai:m").engine.engine
    assert (judge_engine.timeout, judge_engine.max_retries) == (7.0, 1)
    assert (reader_engine.timeout, reader_engine.max_retries) == (30.0, 5)


@pytest.mark.slow
def test_reader_args_and_batch_size_reach_the_reader_engine():
    reader = runner_for("--reader-args", "smollm2:batch_size=4").builder.reader("smollm2")
    assert reader.engine.engine.batch_size == 4
    assert runner_for("--batch-size", "5").builder.reader("smollm2").engine.engine.batch_size == 5
    assert runner_for().builder.reader("smollm2").engine.engine.batch_size == 8      # the engine's own default


def test_config_file_yaml_under_flags_and_a_runs_config_json_round_trip(tmp_path):
    from dataclasses import asdict

    from bench.cli import parse_run_args

    (tmp_path / "run.yaml").write_text("components:\n  rerankers: [none, rankgpt]\n  top_k: 2\n"
                                       "  reranker_args:\n    rankgpt: {window: 4, stride: 2}\ndata:\n  pool: 7\n")
    args, from_file = parse_run_args(["run", "--config", str(tmp_path / "run.yaml"), "--pool", "9",
                                      "--reranker-args", "rankgpt:stride=1"])
    runner = Runner(config_from_args(args, from_file))
    c = runner.config
    assert (c.components.rerankers, c.data.pool, c.components.top_k) == (["none", "rankgpt"], 9, 2)
    rankgpt = runner.builder.reranker("rankgpt")
    assert (rankgpt.window, rankgpt.stride) == (4, 1)               # the file's window, the flag's stride
    # the config.json a run writes (flat) is a config file that reproduces the run's config; so is the sectioned form
    for name, values in (("config.json", c.flat()), ("sections.json", asdict(c))):
        (tmp_path / name).write_text(json.dumps({**values, "fingerprints": {"data": []}}))
        assert config_from_args(*parse_run_args(["run", "--config", str(tmp_path / name)])) == c


@pytest.mark.parametrize("text, message", [
    ('{"pools": 3}', "--config {}: unknown key 'pools'; did you mean 'pool'? valid: the sections components, data, "
                     "servers, runtime, reporting or their fields rerankers, readers, "),
    ('{"data": {"top_k": 3}}', "--config {}: data.top_k: a field of components; data has datasets, split, limit, "),
    ('{"data": 3}', "--config {}: data=3: expected a mapping of the section's fields (datasets, split, "),
    ('{"pool": 3, "data": {"pool": 4}}', "--config {}: pool given twice"),
    ('[1, 2]', "--config {}: expected a mapping of RunConfig sections or fields"),
    ('{"reranker_args": {"rankgpt": {"window": [1]}}, "rerankers": ["none", "rankgpt"]}',
     "--reranker-args rankgpt: window=[1]: expected int"),
])
def test_bad_config_files_fail_in_one_line(tmp_path, text, message):
    from bench.cli import parse_run_args

    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        runner = Runner(config_from_args(*parse_run_args(["run", "--config", str(path)])))
        runner.config.validate()
    assert str(err.value).startswith(message.format(path))


def test_component_args_parsing_and_typing():
    from dataclasses import dataclass

    from bench.options import convert, parse_component_args, typed_options

    assert parse_component_args("--reader-args", ["openai:org/m:7b:timeout=3,max_retries=0", "smollm2:batch_size=2",
                                                  "smollm2:device=cpu"]) == {
        "openai:org/m:7b": {"timeout": "3", "max_retries": "0"}, "smollm2": {"batch_size": "2", "device": "cpu"}}
    for bad in ("smollm2", "smollm2:", ":batch_size=2", "smollm2:batch_size=2,", "smollm2:=2"):
        with pytest.raises(UserError, match="expected NAME:key=value"):
            parse_component_args("--reader-args", [bad])

    @dataclass(frozen=True)
    class Options:
        flag: bool = False
        limit: int | None = 3
        scale: float = 1.0

    assert typed_options(Options, {"flag": "true", "limit": "none", "scale": "2"}, "x") == Options(True, None, 2.0)
    assert typed_options(Options, {"flag": "0", "limit": 5, "scale": 3}, "x") == Options(False, 5, 3)
    for key, value, expected in (("flag", "maybe", "bool"), ("limit", "2.5", "int | None"), ("scale", True, "float"),
                                 ("limit", False, "int | None")):
        with pytest.raises(UserError, match=rf"^x: {key}={value!r}: expected {expected}$".replace("|", r"\|")):
            typed_options(Options, {key: value}, "x")
    assert convert("None", str | None, "x") is None and convert("None", str, "x") == "None"


def test_list_shows_a_components_options_with_defaults(capsys):
    from bench.cli import main

    import re

    assert main(["list", "--reranker", "rank-zephyr"]) == 0
    out = capsys.readouterr().out
    row = re.compile(r"^\| (\w+) +\| ([^|]+?(?: \| None)?) +\| (.+?) +\|$", re.M)
    rows = {m.group(1): (m.group(2), m.group(3)) for m in row.finditer(out)}
    assert rows["window"] == ("int", "20") and rows["stride"] == ("int", "10")
    assert rows["tokenizer"] == ("str | None", "None") and rows["timeout"] == ("float | None", "None")
    assert rows["checkpoint"] == ("str | None", "'castorini/rank_zephyr_7b_v1_full' (registered)")
    assert main(["list", "--reader", "smollm2"]) == 0
    assert {m.group(1): m.group(3) for m in row.finditer(capsys.readouterr().out)}["batch_size"] == "8"
    assert main(["list", "--reranker", "monot6"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown reranker 'monot6'; did you mean 'monot5' or "
                                              "'monot5-3b'? registered: ")
