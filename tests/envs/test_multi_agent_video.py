"""--video of a JaxMARL run: MPE episodes drawn by JaxMARL's own MPE visualiser, played one step at a time with the
policy acting for every agent; other JaxMARL envs refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

import ppox
from ppox.acting.agent_episodes import film_stacked_agents
from ppox.errors import ConfigError

pytest.importorskip("jaxmarl")
pytest.importorskip("moviepy")

from moviepy import VideoFileClip  # noqa: E402

from ppox.envs.jaxmarl import AgentStack, make  # noqa: E402


@pytest.mark.long  # (the fused program's compile: about 60 s on 2 loaded cores)
def test_a_jaxmarl_mpe_run_is_filmed_and_other_jaxmarl_envs_refuse(tmp_path):
    config = ppox.Config(
        env="MPE_simple_spread_v3", num_envs=4, num_steps=16, total_timesteps=128, seed=0, run_dir=str(tmp_path)
    )
    policy = ppox.load(ppox.train(config).run_path)
    filmed = ppox.evaluate(policy, episodes=2, video_folder=tmp_path / "videos")
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 2
    clip = VideoFileClip(str(videos[0]))
    try:
        assert clip.n_frames > 20  # (26 steps a game: one frame at the reset, one after each step)
    finally:
        clip.close()
    assert filmed.shape == (2,) and np.isfinite(filmed).all() and (filmed < 0).all()  # (distances, collisions)
    stack, params = make("MPE_simple_spread_v3")
    other = AgentStack(stack.env, "SMAX-2s3z")  # (the refusal reads the env's name)
    with pytest.raises(ConfigError, match="films JaxMARL's MPE envs only"):  # (before any episode is played)
        film_stacked_agents(policy, other, params, 1, True, 0, tmp_path / "no")
    with pytest.raises(ConfigError, match="films JaxMARL's MPE envs only"):
        other.render_frames([])
