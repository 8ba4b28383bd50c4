"""`ppox plot` (issue 33 item 8): legends tell runs apart by env and by the settings that differ; an LM run is
drawn against completions; panels no plotted run has values for are left out."""

import csv
import json
import shutil
from pathlib import Path

from ppox.cli import main
from ppox.experiments.plots import draw_runs, pyplot
from tests.helpers import FIXTURES

RUN_V1 = FIXTURES.parent / "storage" / "fixtures" / "run_v1"  # a saved CartPole run: 3 updates, one seed
LM_COLUMNS = ["update", "global_step", "seed", "episode_return", "episode_length", "episode_count", "policy_loss",
              "value_loss", "entropy", "approx_kl", "clip_fraction", "kl_ref", "kl_coef", "non_score_reward",
              "eos_fraction", "tokens_per_second", "steps_per_second", "wall_time"]  # as an LM run writes them


def cartpole_run(folder: Path, learning_rate: float) -> Path:
    shutil.copytree(RUN_V1, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "learning_rate": learning_rate,
                                                    "run_name": folder.name}))
    return folder


def lm_run(folder: Path) -> Path:
    """The run folder files `ppox lm train --updates 3 --prompts-per-update 4` writes that a plot reads."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "lm", "model": "/models/gpt2/", "updates": 3,
                                                    "prompts_per_update": 4, "learning_rate": 1e-5}))
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LM_COLUMNS)
        for update in range(3):
            writer.writerow([update, 4 * (update + 1), 0] + [0.5 + 0.1 * update] * (len(LM_COLUMNS) - 3))
    return folder


def lines_by_axes(fig) -> dict:
    return {ax: [line.get_label() for line in ax.get_lines()] for ax in fig.axes if ax.get_lines()}


def test_legends_name_env_and_differing_settings_and_lm_runs_use_completions(tmp_path):
    runs = [cartpole_run(tmp_path / "a", 1e-3), cartpole_run(tmp_path / "b", 3e-4), lm_run(tmp_path / "lm")]
    fig = draw_runs(runs)
    try:
        (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
        assert [t.get_text() for t in legend.get_texts()] == [
            "CartPole-v1 --learning-rate 0.001", "CartPole-v1 --learning-rate 0.0003", "lm-gpt2"]
        shared = 0
        for ax, labels in lines_by_axes(fig).items():
            if labels != ["lm-gpt2"]:
                assert ax.get_xlabel() == "environment steps" and "lm-gpt2" not in labels
            else:  # an LM-only panel, or the top x axis (no title of its own) of a panel RL and LM runs share
                assert ax.get_xlabel() == ("completions" if ax.get_title() else "completions (LM runs)")
                shared += not ax.get_title()
        assert shared == 6  # return, policy loss, value loss, entropy, approx KL, clip fraction
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles[0] == "episodic return; LM: score" and titles[-2:] == ["KL to the reference",
                                                                             "completions that end"]
        assert "explained variance" in titles  # the CartPole runs have it, the LM run does not
    finally:
        pyplot().close(fig)
    lm_only = draw_runs([runs[2]])
    try:
        titles = [ax.get_title() for ax in lm_only.axes if ax.get_title()]
        assert "explained variance" not in titles and titles[0] == "score" and len(titles) == 8
        assert {ax.get_xlabel() for ax in lm_only.axes if ax.get_lines()} == {"completions"}
    finally:
        pyplot().close(lm_only)
    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 10000 and (tmp_path / "cmp.svg").exists()


def test_runs_alike_but_for_their_folders_are_told_apart_by_folder(tmp_path):
    runs = [cartpole_run(tmp_path / "first", 1e-3), cartpole_run(tmp_path / "second", 1e-3)]
    fig = draw_runs(runs)
    try:
        assert next(iter(lines_by_axes(fig).values())) == ["CartPole-v1 (first)", "CartPole-v1 (second)"]
        assert not any(ax.get_title() in ("KL to the reference", "completions that end") for ax in fig.axes)
    finally:
        pyplot().close(fig)
