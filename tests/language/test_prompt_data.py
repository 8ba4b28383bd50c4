"""Prompt data sets: JSONL, Parquet and Hugging Face `datasets` folders (the fixture made by datasets'
save_to_disk in tests/fixtures/lm/make_fixtures.py --only data), conversations rendered by the chat template,
and extra columns passed to the reward as keyword arguments, aligned with the completions."""

import json
import shutil

import numpy as np
import pytest

from ppox.errors import ConfigError
from ppox.language.chat import load_chat_template
from ppox.language.hf import load
from ppox.language.run_config import LMRunConfig
from ppox.lm.data import prompt_set, read_rows
from ppox.lm.training import make_driver, make_task
from tests import helpers

LM = helpers.FIXTURES / "lm"
ROWS = [{"prompt": "the cat sat", "answer": "mat", "level": 1}, {"prompt": "a dog ran", "answer": "park", "level": 2},
        {"prompt": "policies improve", "answer": "steps", "level": 3}]


def test_jsonl_and_parquet_give_the_same_rows(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "p.parquet")
    assert read_rows(tmp_path / "p.jsonl") == read_rows(tmp_path / "p.parquet") == ROWS
    data = prompt_set(ROWS, None)
    assert data.texts == [r["prompt"] for r in ROWS] and not data.chat
    assert data.columns_of(np.array([2, 2, 0])) == {"answer": ["steps", "steps", "mat"], "level": [3, 3, 1]}


def test_a_datasets_folder_written_by_save_to_disk_reads_without_datasets():
    """The folder holds a conversational split as datasets 5.2 writes it (state.json, dataset_info.json,
    data-00000-of-00001.arrow); its rows come back, messages and all."""
    pytest.importorskip("pyarrow")
    expected = json.loads((LM / "data" / "rows.json").read_text())
    assert read_rows(LM / "data" / "train") == expected
    with pytest.raises(ConfigError, match="a dataset with splits \\['train'\\]: name one"):
        read_rows(LM / "data")


def test_conversations_are_rendered_with_the_chat_template():
    rows = [{"messages": [{"role": "user", "content": "2 + 3?"}], "answer": 5},
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1 + 1?"}],
             "answer": 2}]
    data = prompt_set(rows, LM / "chat" / "chatml")
    template = load_chat_template(LM / "chat" / "chatml")
    assert data.chat and data.texts == [template.render(r["messages"], add_generation_prompt=True) for r in rows]
    assert data.texts[0].endswith("<|im_start|>assistant\n") and data.columns == {"answer": [5, 2]}


@pytest.mark.parametrize("rows, words", [
    ([{"prompt": "a"}, {"prompt": ["x"]}], "row 1 has prompt=.*must be a string"),
    ([{"prompt": "a", "answer": 1}, {"prompt": "b"}], "row 1 has columns"),
    ([{"messages": [{"role": "user", "content": "x"}]}], "need a model folder with a tokenizer"),
    ([{"text": "a"}], "row 0 has prompt=None"),
])
def test_bad_rows_are_one_line_errors(rows, words):
    with pytest.raises(ConfigError, match=words):
        prompt_set(rows, None)


@pytest.mark.long  # (one compiled update: 30-40 s on the loaded 2-core machine)
def test_the_reward_gets_each_completions_columns(tmp_path):
    """One update on the tiny Qwen2 with a ChatML template: the reward receives answer= and level=, one value
    per completion, those of the prompt each completion answers (k = 2 completions per prompt)."""
    folder = tmp_path / "qwen2"
    shutil.copytree(LM / "qwen2", folder)
    config = json.loads((LM / "chat" / "chatml" / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    rows = [{"messages": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"], "level": r["level"]}
            for r in ROWS]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    seen = []

    def reward(prompts, completions, answer, level):
        seen.append((prompts, answer, level))
        return [float(n) for n in level]

    settings = LMRunConfig(model=str(folder), prompts=str(tmp_path / "p.jsonl"), advantage="grpo",
                           samples_per_prompt=2, prompts_per_update=3, max_new_tokens=3, max_prompt_tokens=48,
                           epochs=1, save=False)
    model = load(folder)
    task = make_task(settings, model, None, reward)
    driver = make_driver(settings, model, task)
    picked = driver.prompt_rows(0)
    _, row = driver.one_update(driver.init())
    (prompts, answer, level), = seen
    assert len(prompts) == len(answer) == len(level) == 6 and sorted(set(picked)) == [0, 1, 2]
    assert answer == [ROWS[i]["answer"] for i in picked] and level == [ROWS[i]["level"] for i in picked]
    assert task.show(task.ids[picked], task.mask[picked]) == prompts
    assert row["episode_return"] == pytest.approx(2.0)  # (the mean level: each prompt twice)


@pytest.mark.long  # (two compiled updates and a greedy pass: 38 s on the loaded 2-core machine)
def test_held_out_prompts_are_scored_every_n_updates(tmp_path):
    """--eval-prompts with --eval-every 2: after update 1 eval/reward is NaN (not measured), after update 2 it
    is the mean score of one greedy completion of each held-out prompt, which the reward received with the
    held-out rows' columns; a held-out set without --eval-every is a one-line error."""
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps({"prompt": r["prompt"]}) for r in ROWS))
    held = [{"prompt": "the dog sat", "weight": 0.5}, {"prompt": "a cat ran", "weight": 2.0}]
    (tmp_path / "held.jsonl").write_text("\n".join(json.dumps(r) for r in held))
    calls = []

    def reward(prompts, completions, **columns):
        calls.append((list(prompts), columns))
        weights = columns.get("weight", [1.0] * len(completions))
        return [len(c) * weights[i] for i, c in enumerate(completions)]

    with pytest.raises(ConfigError, match="--eval-prompts .* --eval-every 0: give both"):
        LMRunConfig(model=str(LM / "qwen2"), eval_prompts=str(tmp_path / "held.jsonl"))
    settings = LMRunConfig(model=str(LM / "qwen2"), prompts=str(tmp_path / "train.jsonl"), prompts_per_update=2,
                           max_new_tokens=3, epochs=1, save=False, eval_prompts=str(tmp_path / "held.jsonl"),
                           eval_every=2, advantage="rloo", samples_per_prompt=2)
    model = load(LM / "qwen2")
    driver = make_driver(settings, model, make_task(settings, model, None, reward))
    assert driver.metric_names[-2:] == ("eval/reward", "eval/length")
    state, first = driver.one_update(driver.init())
    assert np.isnan(first["eval/reward"]) and len(calls) == 1
    state, second = driver.one_update(state)
    assert len(calls) == 3 and calls[2][0] == ["the dog sat", "a cat ran"]
    assert calls[2][1] == {"weight": [0.5, 2.0]} and calls[1][1] == {}
    pending = driver.pending([first, second])
    assert np.isnan(pending["eval/reward"][0, 0]) and pending["eval/reward"][0, 1] == second["eval/reward"]
    assert second["eval/reward"] >= 0 and 1 <= second["eval/length"] <= 3


def test_lm_sample_renders_conversations_with_the_chat_template(tmp_path, capsys):
    """`ppox lm sample` on {"messages": ...} rows: each conversation is rendered by the folder's template (the
    greedy completion equals that of the rendered text given as a prompt) and printed with its messages."""
    import ppox.lm
    from ppox.cli import main

    folder = tmp_path / "qwen2"
    shutil.copytree(LM / "qwen2", folder)
    short = "{% for m in messages %}{{ m.role[0] }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}a:{% endif %}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": short, "eos_token": "<eos>"}))
    messages = [[{"role": "user", "content": "the cat"}], [{"role": "user", "content": "a dog ran"}]]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"messages": m}) for m in messages))
    assert main(["lm", "sample", "--model", str(folder), "--prompts", str(tmp_path / "p.jsonl"), "--greedy",
                 "--max-new-tokens", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["prompt"] for line in lines] == messages
    rendered = [load_chat_template(folder).render(m) for m in messages]
    assert [line["completion"] for line in lines] == ppox.lm.sample(folder, rendered, greedy=True, max_new_tokens=3)
