"""Registry, record layout, instance selection, demonstrations, prompts files and the CLI."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxscale.cli import main
from ctxscale.data import prompts, tasks
from ctxscale.data.tasks import DataOptions, get_spec
from ctxscale.errors import CtxscaleError

PAPER_DATASETS = [
    "gsm8k", "math", "aqua_rat", "piqa", "hellaswag", "arc_easy", "arc_challenge",
    "openbookqa", "siqa", "winogrande", "commonsense_qa",
    "wmt14_cs_en", "wmt14_de_en", "wmt14_fr_en", "wmt14_hi_en", "wmt14_ru_en",
]  # fmt: skip


def words(text: str) -> int:
    """A token counter for tests: whitespace words."""
    return len(text.split())


# ---------------------------------------------------------------- registry


def test_registry_has_every_dataset_of_the_paper():
    names = tasks.dataset_names()
    for name in PAPER_DATASETS:
        assert name in names
    dm = [n for n in names if n.startswith("dm_math__")]
    assert len(dm) == 56
    mini = [n for n in names if tasks.get_spec(n).generator == "miniworld"]
    assert mini == ["mini_arith", "mini_recall", "mini_trans"]
    assert len(names) == len(PAPER_DATASETS) + 56 + len(mini)


@pytest.mark.parametrize(
    ("name", "task", "max_new_tokens", "metric"),
    [
        ("gsm8k", "arithmetic", 400, "math_equiv"),
        ("math", "arithmetic", 400, "math_equiv"),
        ("dm_math__arithmetic__add_or_sub", "arithmetic", 400, "math_equiv"),
        ("aqua_rat", "arithmetic", 5, "mc_match"),
        ("arc_easy", "common_sense", 5, "mc_match"),
        ("hellaswag", "common_sense", 5, "mc_match"),
        ("commonsense_qa", "common_sense", 1, "mc_match"),
        ("wmt14_hi_en", "translation", 256, "bleu_4"),
    ],
)
def test_registry_settings_match_the_paper(name, task, max_new_tokens, metric):
    spec = get_spec(name)
    assert (spec.task, spec.max_new_tokens, spec.metric) == (task, max_new_tokens, metric)
    assert "\n\n" in spec.stop


def test_stop_strings_include_the_prefix_like_the_original():
    assert get_spec("gsm8k").stop_strings == ["\n\n", "Question: "]
    assert get_spec("wmt14_de_en").stop_strings == ["\n\n"]


def test_unknown_dataset_lists_known_names():
    with pytest.raises(CtxscaleError, match="unknown dataset 'gsm9k'; known datasets: gsm8k"):
        get_spec("gsm9k")


# ---------------------------------------------------------------- record layout

RAW = {
    "gsm8k": (
        {"question": "Tom has 3 apples and buys 2. How many?", "answer": "3+2=5\n#### 5"},
        "Tom has 3 apples and buys 2. How many?",
        "3+2=5\n#### 5",
    ),
    "aqua_rat": (
        {"question": "2+2?", "options": ["A)3", "B)4"], "correct": "B", "rationale": "x"},
        "2+2?\nA)3\nB)4",
        "B",
    ),
    "piqa": (
        {"goal": "Open a jar", "sol1": "twist", "sol2": "bite", "label": 0},
        "Open a jar\nPick one of the two options:\nA. twist\nB. bite",
        "A",
    ),
    "hellaswag": (
        {"ctx": "He runs", "endings": ["fast", "slow", "up", "down"], "label": "2"},
        "Read the sentence and select the best ending:\nHe runs\nA. fast\nB. slow\nC. up\nD. down",
        "C",
    ),
    "arc_easy": (
        {"question": "Sky?", "choices": {"text": ["blue", "red"], "label": ["1", "2"]},
         "answerKey": "1"},
        "Sky?\nA. blue\nB. red",
        "A",
    ),
    "openbookqa": (
        {"question_stem": "Sun is a", "choices": {"text": ["star", "moon"], "label": ["A", "B"]},
         "answerKey": "A"},
        "Sun is a\nA. star\nB. moon",
        "A",
    ),
    "siqa": (
        {"context": "Kai cried.", "question": "Why?", "answerA": "sad", "answerB": "happy",
         "answerC": "bored", "label": "1"},
        "Kai cried. Why?\nA. sad\nB. happy\nC. bored",
        "A",
    ),
    "winogrande": (
        {"sentence": "The cup fit in the box because _ was small.", "option1": "cup",
         "option2": "box", "answer": "1"},
        "The cup fit in the box because _ was small.\nPick A or B to fill in the blank:\n"
        "A. cup\nB. box",
        "A",
    ),
    "commonsense_qa": (
        {"question": "Where?", "choices": {"label": ["A", "B", "C", "D", "E"],
                                           "text": ["a", "b", "c", "d", "e"]}, "answerKey": "E"},
        "Where?\nA. a\nB. b\nC. c\nD. d\nE. e",
        "E",
    ),
    "wmt14_de_en": (
        {"translation": {"de": "Hallo Welt", "en": "Hello world"}},
        "German: Hallo Welt\nEnglish:",
        "Hello world",
    ),
    "dm_math__numbers__gcd": (
        {"question": "What is the gcd of 4 and 6?", "answer": "2"},
        "What is the gcd of 4 and 6?",
        "2",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RAW))
def test_format_record_reproduces_the_original_layout(name):
    record, text, reference = RAW[name]
    assert tasks.format_record(get_spec(name), record) == (text, reference)


def test_format_record_with_missing_field_is_an_error():
    with pytest.raises(CtxscaleError, match="piqa: record does not fit"):
        tasks.format_record(get_spec("piqa"), {"goal": "x"})


# ---------------------------------------------------------------- prompts


def test_prompt_prefix_and_suffix_join_to_the_original_prompt():
    spec = get_spec("gsm8k")
    demos = [tasks.Example("train:0", "Q1?", "A1"), tasks.Example("train:1", "Q2?", "A2")]
    evals = [tasks.Example("test:5", "Q3?", "A3")]
    doc = tasks.prompts_document(spec, evals, demos, 2, 31337)
    full = doc["prefix"] + doc["instances"][0]["suffix"]
    assert (
        full == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer:"
    )
    assert doc["demo_ids"] == ["train:0", "train:1"]
    zero = tasks.prompts_document(spec, evals, demos, 0, 31337)
    assert zero["prefix"] == "" and zero["instances"] == doc["instances"]
    assert prompts.count_n_pmt(doc["prefix"], doc["instances"][0]["suffix"], words) == len(
        full.split()
    )


def test_mc_demonstration_has_no_space_after_answer_like_the_original():
    spec = get_spec("arc_easy")
    doc = tasks.prompts_document(
        spec, [tasks.Example("t:1", "Q?\nA. x\nB. y", "B")], [tasks.Example("d:0", "P?", "A")], 1, 1
    )
    assert doc["prefix"] == "Question: P?\nAnswer:A\n\n"
    assert doc["instances"][0]["suffix"] == "Question: Q?\nA. x\nB. y\nAnswer:"


def test_token_counter_defaults_and_transformers_like_objects():
    count, name = prompts.token_counter(None)
    assert name == "approx_bytes_div_4" and count("abcdefgh") == 2 and count("abcdefghi") == 3

    class FakeTokenizer:
        name_or_path = "fake/tok"

        def encode(self, text):
            return text.split()

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": ([0] if add_special_tokens else []) + [1] * len(text.split())}

    count, name = prompts.token_counter(FakeTokenizer())
    assert name == "fake/tok" and count("a b c") == 3  # no special tokens counted
    with pytest.raises(TypeError):
        prompts.token_counter(42)


# ---------------------------------------------------------------- selection


def gsm_rows(n, long_every=0):
    rows = []
    for i in range(n):
        question = f"What is {i} plus one?"
        if long_every and i % long_every == 0:
            question += " filler" * 300
        rows.append({"question": question, "answer": f"#### {i + 1}"})
    return rows


def test_select_eval_caps_filters_long_examples_and_is_stable():
    spec = get_spec("gsm8k")
    rows = gsm_rows(400, long_every=4)
    chosen = tasks.select_eval(spec, rows, words, seed=31337, max_instances=250, max_tokens=256)
    assert len(chosen) == 250
    assert all(words(tasks.example_text(spec, e)) <= 256 for e in chosen)
    assert len({e.id for e in chosen}) == 250
    again = tasks.select_eval(spec, rows, words, seed=31337)
    assert again == chosen
    assert tasks.select_eval(spec, rows, words, seed=1) != chosen
    small = tasks.select_eval(spec, gsm_rows(40, long_every=4), words)
    assert len(small) == 30  # everything that passes, nothing duplicated


def test_seeded_walk_is_a_permutation_and_lazy():
    order = list(tasks.seeded_walk(50, 31337, 0))
    assert sorted(order) == list(range(50))
    assert order == list(tasks.seeded_walk(50, 31337, 0))
    walk = tasks.seeded_walk(40_000_000, 31337, 1)
    first = [next(walk) for _ in range(5)]
    assert len(set(first)) == 5 and all(0 <= i < 40_000_000 for i in first)


def test_demonstrations_are_nested_exclude_eval_inputs_and_never_repeat():
    spec = get_spec("gsm8k")
    rows = gsm_rows(100) + gsm_rows(20)  # 20 duplicated inputs
    exclude = {"What is 3 plus one?", "What is 7 plus one?"}
    d31 = tasks.select_demos(spec, rows, words, 31, exclude)
    d7 = tasks.select_demos(spec, rows, words, 7, exclude)
    assert d31[:7] == d7
    inputs = [d.input for d in tasks.select_demos(spec, rows, words, 98, exclude)]
    assert len(inputs) == len(set(inputs)) == 98
    assert not exclude & set(inputs)
    with pytest.raises(CtxscaleError, match="99 demonstrations requested .* only 98"):
        tasks.select_demos(spec, rows, words, 99, exclude)


# ---------------------------------------------------------------- sources


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_local_jsonl_and_parquet_sources(tmp_path):
    spec = get_spec("gsm8k")
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", gsm_rows(5))
    pq.write_table(pa.Table.from_pylist(gsm_rows(7)), tmp_path / "gsm8k" / "train.parquet")
    opts = DataOptions(source="local", local_dir=str(tmp_path))
    assert len(tasks.load_split(spec, "eval", opts)) == 5
    assert tasks.load_split(spec, "demo", opts)[6]["answer"] == "#### 7"


def test_local_source_errors_name_file_row_and_field(tmp_path):
    spec = get_spec("gsm8k")
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "1"}, {"q": 1}])
    opts = DataOptions(source="local", local_dir=str(tmp_path))
    with pytest.raises(CtxscaleError, match=r"test.jsonl: line 2: missing field 'question'"):
        tasks.load_split(spec, "eval", opts)
    pq.write_table(pa.Table.from_pylist([{"question": "q"}]), tmp_path / "gsm8k" / "train.parquet")
    with pytest.raises(CtxscaleError, match=r"train.parquet: row 0: missing field 'answer'"):
        tasks.load_split(spec, "demo", opts)
    wmt = get_spec("wmt14_de_en")
    write_jsonl(tmp_path / "wmt14_de_en" / "test.jsonl", [{"translation": {"de": "x"}}])
    with pytest.raises(CtxscaleError, match="missing field 'translation.en'"):
        tasks.load_split(wmt, "eval", opts)
    with pytest.raises(CtxscaleError, match="expected .*piqa/validation.jsonl"):
        tasks.load_split(get_spec("piqa"), "eval", opts)


def hub_fixture(root):
    """A local copy of two hub repos in the hub's on-disk layout (README configs + parquet)."""
    repo = root / "openai" / "gsm8k"
    (repo / "main").mkdir(parents=True)
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n"
        "    path: main/train-*\n  - split: test\n    path: main/test-*\n---\n"
    )
    pq.write_table(
        pa.Table.from_pylist(gsm_rows(30)), repo / "main" / "test-00000-of-00001.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist(gsm_rows(60)[30:]), repo / "main" / "train-00000-of-00001.parquet"
    )
    math_repo = root / "EleutherAI" / "hendrycks_math"
    subjects = get_spec("math").hub_config
    lines = ["---", "configs:"]
    for i, subject in enumerate(subjects):
        (math_repo / subject).mkdir(parents=True)
        for split in ("train", "test"):
            rows = [{"problem": f"{subject} {split} {j}", "solution": f"$\\boxed{{{j}}}$",
                     "level": "Level 1", "type": subject} for j in range(i + 1)]  # fmt: skip
            pq.write_table(pa.Table.from_pylist(rows), math_repo / subject / f"{split}.parquet")
        lines += [f"- config_name: {subject}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: {subject}/{s}.parquet" for s in ("train", "test")]
    (math_repo / "README.md").write_text("\n".join(lines + ["---", ""]))


def test_hub_loader_on_a_local_copy_in_hub_format(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub_fixture(tmp_path / "hub")
    opts = DataOptions(source="hub", hub_path=str(tmp_path / "hub"), cache_dir=str(tmp_path / "c"))
    rows = tasks.load_split(get_spec("gsm8k"), "eval", opts)
    assert len(rows) == 30 and rows[0] == {"question": "What is 0 plus one?", "answer": "#### 1"}
    math_rows = tasks.load_split(get_spec("math"), "eval", opts)
    assert len(math_rows) == sum(range(1, 8))  # the seven subject configs, concatenated
    assert math_rows[0]["problem"] == "algebra test 0"
    with pytest.raises(CtxscaleError, match="cannot load"):
        tasks.load_split(get_spec("piqa"), "eval", opts)


# ---------------------------------------------------------------- prepare + CLI


def test_prepare_writes_contract_files_byte_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub_fixture(tmp_path / "hub")
    args = [
        "prepare", "--dataset", "gsm8k", "--n-shots", "0", "1", "3",
        "--source", "hub", "--hub-path", str(tmp_path / "hub"),
        "--cache-dir", str(tmp_path / "cache"), "--max-instances", "10",
    ]  # fmt: skip
    out1, out2 = tmp_path / "p1", tmp_path / "p2"
    assert main([*args, "--out-dir", str(out1)]) == 0
    assert main([*args, "--out-dir", str(out2)]) == 0
    for k in (0, 1, 3):
        assert (out1 / f"{k}.json").read_bytes() == (out2 / f"{k}.json").read_bytes()
    doc = json.loads((out1 / "3.json").read_text())
    for key in ("dataset", "task", "n_shots", "seed", "prefix", "stop", "max_new_tokens",
                "metric", "instances"):  # fmt: skip
        assert key in doc
    assert doc["n_shots"] == 3 and doc["seed"] == 31337 and doc["metric"] == "math_equiv"
    assert len(doc["instances"]) == 10 and doc["prefix"].count("Question: ") == 3
    one = json.loads((out1 / "1.json").read_text())
    assert doc["prefix"].startswith(one["prefix"]) and one["instances"] == doc["instances"]
    assert set(doc["instances"][0]) == {"id", "suffix", "reference"}


def test_prepare_generates_dm_math_offline(tmp_path):
    out = tmp_path / "dm"
    code = main([
        "prepare", "--dataset", "dm_math__numbers__place_value", "--n-shots", "0", "2",
        "--max-instances", "5", "--dm-train-size", "10", "--dm-test-size", "8",
        "--dm-difficulty", "0", "0.3", "--out-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    doc = json.loads((out / "2.json").read_text())
    assert doc["source"] == "generate" and doc["dm_difficulty"] == [0.0, 0.3]
    assert len(doc["instances"]) == 5 and doc["prefix"].count("\nAnswer: ") == 2
    assert doc["instances"][0]["suffix"].endswith("\nAnswer:")


def test_prepare_rejects_generate_for_hub_only_datasets(capsys):
    assert main(["prepare", "--dataset", "piqa", "--source", "generate"]) == 2
    assert "only exists for DeepMind Mathematics" in capsys.readouterr().err


def test_cli_list_show_count(capsys):
    assert main(["tasks", "list"]) == 0
    listing = capsys.readouterr().out
    assert "gsm8k\tarithmetic\topenai/gsm8k" in listing and "dm_math__numbers__gcd" in listing
    assert main(["tasks", "count", "--scale", "paper"]) == 0
    out = capsys.readouterr().out
    assert "aqua_rat\tarithmetic\t254\t250" in out
    assert "# total: 72 datasets (one per DeepMind Mathematics module), 18000" in out
    assert main(["tasks", "count", "--scale", "galaxy"]) == 2
    assert "known scales: default, paper" in capsys.readouterr().err
    assert main([
        "tasks", "show", "dm_math__numbers__place_value", "--n-shots", "1",
        "--dm-train-size", "5", "--dm-test-size", "5",
    ]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert shown.startswith("Question: ") and "n_shots=1" in shown


def test_prepare_with_config_equals_the_flags_it_stands_for(tmp_path):
    """`prepare --config` reads the seed and data block (a miniature dataset: miniworld.seed
    and .instances) and writes the same bytes as the flags; a flag given still wins."""
    import yaml

    from ctxscale.config import load_config

    cfg = tmp_path / "config.yaml"
    doc = yaml.safe_load(tasks.scale_configs("default")[0].read_text())
    doc["seed"] = 7
    doc["data"].update(max_instances=5, dm_difficulty=[0, 0.3], dm_train_size=10, dm_test_size=8)
    doc["miniworld"].update(seed=9, instances=6)
    cfg.write_text(yaml.safe_dump(doc))
    config = load_config(cfg)
    dm = "dm_math__numbers__place_value"
    assert tasks.config_options(config, dm) == {
        "seed": 7, "max_instances": 5, "max_example_tokens": 256, "dm_difficulty": (0.0, 0.3),
        "source": "generate", "tokenizer": "bytes/4", "dm_train_size": 10, "dm_test_size": 8,
        "max_new_tokens": 24,
    }  # fmt: skip
    assert tasks.config_options(config, "mini_recall") == {"seed": 9, "max_instances": 6}
    flags = {
        dm: ["--seed", "7", "--max-instances", "5", "--max-example-tokens", "256",
             "--dm-difficulty", "0", "0.3", "--source", "generate", "--tokenizer", "bytes/4",
             "--dm-train-size", "10", "--dm-test-size", "8", "--max-new-tokens", "24"],
        "mini_recall": ["--seed", "9", "--max-instances", "6"],
    }  # fmt: skip
    for dataset, explicit in flags.items():
        common = ["prepare", "--dataset", dataset, "--n-shots", "0", "2"]
        assert main([*common, "--out-dir", str(tmp_path / "a" / dataset), *explicit]) == 0
        assert (
            main([*common, "--out-dir", str(tmp_path / "b" / dataset), "--config", str(cfg)]) == 0
        )
        for k in (0, 2):
            a = (tmp_path / "a" / dataset / f"{k}.json").read_bytes()
            assert a == (tmp_path / "b" / dataset / f"{k}.json").read_bytes()
    out = tmp_path / "c"
    assert main(["prepare", "--dataset", dm, "--n-shots", "0", "--config", str(cfg),
                 "--max-instances", "3", "--out-dir", str(out)]) == 0  # fmt: skip
    doc0 = json.loads((out / "0.json").read_text())
    assert len(doc0["instances"]) == 3 and doc0["seed"] == 7


def test_count_reads_the_scale_config_and_says_so(tmp_path, capsys):
    """`tasks count` counts what a config runs: the default scale is config.yaml (its real
    datasets and the miniature world's), not a second list of datasets elsewhere."""
    from ctxscale.config import load_configs

    default = load_configs(tasks.scale_configs("default"))
    assert main(["tasks", "count"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# from config.yaml (scale default)")
    n = default["data"]["max_instances"]
    for name in default["datasets"]:
        assert f"{name}\tarithmetic\t300\t{n}" in out
    for name in default["miniworld"]["datasets"]:
        assert f"\n{name}\t" in out
    assert main(["tasks", "count", "--config", *map(str, tasks.scale_configs("paper"))]) == 0
    assert "# total: 72 datasets (one per DeepMind Mathematics module), 18000" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit):  # one or the other
        main(["tasks", "count", "--scale", "paper", "--config", "x.yaml"])
