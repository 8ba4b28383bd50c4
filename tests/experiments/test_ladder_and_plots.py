"""ppox ladder, ppox plot, ppox explain clip: real runs, real image files."""

import json

import numpy as np
import pytest

import ppox
from ppox.cli import main
from ppox.experiments.plots import clipped_objective


@pytest.mark.long
def test_ladder_report_has_every_rung_from_every_seed(tmp_path, capsys):
    """The README's ladder command as its test runs it, in the long tier beside that test: where it runs after
    it, it loads the eight compiled rungs from the session's compilation cache (where the two overlap, both
    compile)."""
    out = tmp_path / "report"
    code = main(["ladder", "--env", "CartPole-v1", "--seeds", "2", "--total-timesteps", "2048", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    names = [r["rung"] for r in results["rungs"]]
    assert names[0] == "REINFORCE" and names[-1].startswith("+ entropy bonus") and len(names) == 8
    assert all(len(r["final_return_per_seed"]) == 2 for r in results["rungs"])
    for name in ("curves", "kl_and_clip_fraction"):
        for suffix in (".png", ".svg"):
            assert (out / f"{name}{suffix}").stat().st_size > 5000
    assert (out / "table.md").read_text().count("\n| ") >= 10
    assert "report:" in capsys.readouterr().out
    # the rungs differ only where the ladder says they do
    changes = [r["changes"] for r in results["rungs"]]
    assert changes[0]["baseline"] is False and changes[1].get("baseline", True) is True
    assert changes[5]["clip_coef"] is None and changes[6]["clip_coef"] == 0.2


def test_ladder_bad_input(capsys):
    assert main(["ladder", "--env", "Cartpole"]) == 2
    assert "did you mean CartPole-v1" in capsys.readouterr().err
    assert main(["ladder", "--seeds", "0"]) == 2


def test_plot_overlays_runs(tmp_path, capsys):
    for name in ("a", "b"):
        ppox.train(ppox.Config(total_timesteps=4096, num_steps=128, run_dir=str(tmp_path), run_name=name,
                               progress=False, tensorboard=False, seed=len(name)))
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 10000 and (tmp_path / "cmp.svg").exists()
    assert main(["plot", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "plots" / "metrics.png").exists()
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "no metrics.csv" in capsys.readouterr().err


def test_explain_clip_draws_the_objective(tmp_path, capsys):
    assert main(["explain", "clip", "--eps", "0.3", "--out", str(tmp_path / "clip")]) == 0
    assert (tmp_path / "clip.png").stat().st_size > 10000 and (tmp_path / "clip.svg").exists()
    assert "clip(r, 0.7, 1.3)" in capsys.readouterr().out
    assert main(["explain", "clip", "--eps", "1.5"]) == 2
    assert main(["explain", "nothing"]) == 2


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_clipped_objective_is_flat_exactly_where_the_gradient_is_zero(advantage):
    eps, r = 0.2, np.linspace(0.0, 2.0, 2001)
    objective = clipped_objective(r, advantage, eps)
    slope = np.gradient(objective, r)
    flat = (r > 1 + eps + 1e-3) if advantage > 0 else (r < 1 - eps - 1e-3)
    moving = (r < 1 + eps - 1e-3) if advantage > 0 else (r > 1 - eps + 1e-3)
    np.testing.assert_allclose(slope[flat], 0.0, atol=1e-9)
    np.testing.assert_allclose(slope[moving], advantage, atol=1e-9)
    np.testing.assert_array_less(objective, r * advantage + 1e-12)  # a pessimistic (lower) bound of r A
