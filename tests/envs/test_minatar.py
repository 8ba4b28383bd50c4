"""MinAtar: an MLP preset and a CNN preset (--network cnn), and videos drawn from the grid observations."""

import numpy as np
import pytest

import ppox
from ppox.cli import main
from ppox.acting.evaluation import grid_frame


def test_minatar_presets_for_both_networks():
    mlp, cnn = ppox.Config.preset("Breakout-MinAtar"), ppox.Config.preset("Breakout-MinAtar", network="cnn")
    assert mlp.network == "mlp" and mlp.hidden_sizes == (256, 256)
    assert cnn.network == "cnn" and cnn.hidden_sizes == (128,) and cnn.num_envs == mlp.num_envs
    assert ppox.Config.preset("Breakout-MinAtar", network="cnn", hidden_sizes=(32,)).hidden_sizes == (32,)


def test_grid_frame_colours_each_object_kind():
    obs = np.zeros((10, 10, 3), np.float32)
    obs[0, 0, 0] = obs[5, 5, 2] = obs[5, 5, 1] = 1.0
    picture = grid_frame(obs, scale=2)
    assert picture.shape == (20, 20, 3) and picture.dtype == np.uint8
    assert picture[19, 19].max() == 0 and picture[0, 0].max() > 0
    assert not np.array_equal(picture[0, 0], picture[10, 10])  # kinds differ; the last channel is on top


@pytest.mark.long
def test_cnn_on_minatar_trains_and_records_video(tmp_path, capsys):
    pytest.importorskip("moviepy")
    args = ["train", "--env", "Breakout-MinAtar", "--network", "cnn", "--total-timesteps", "1024", "--num-envs", "8",
            "--num-steps", "32", "--run-dir", str(tmp_path), "--run-name", "c", "--no-progress"]
    assert main(args) == 0
    policy = ppox.load(tmp_path / "c")
    assert policy.config.network == "cnn" and policy.config.hidden_sizes == (128,)  # the CNN preset
    assert "actor_cnn" in policy.params["params"]
    assert main(["eval", str(tmp_path / "c"), "--episodes", "1", "--video"]) == 0
    assert [p.suffix for p in (tmp_path / "c" / "videos").iterdir()] == [".mp4"]
