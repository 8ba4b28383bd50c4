"""A newcomer's first hour: envs nobody here wrote, and the edges of the API and the CLI."""

import inspect
import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import ppox
from ppox.errors import ConfigError
from tests import toy_envs
from tests import helpers
from tests.helpers import ROOT, ppox_cli

QUICK = {**helpers.QUICK, "total_timesteps": 1024, "num_envs": 2}


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Blackjack-v1", "Taxi-v4"])
def test_a_loaded_policy_acts_on_what_the_env_returns(tmp_path, env_id):
    result = ppox.train(ppox.Config(env=env_id, **QUICK, run_dir=str(tmp_path), run_name="r"))
    policy = ppox.load(result.run_path)
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    masks = {"info": info} if policy.masked else {}  # (Taxi-v4 trains with its info["action_mask"])
    action = policy.act(obs, **masks)  # one observation, as the env returns it
    assert env.action_space.contains(action)
    env.step(action)
    batch = tuple(np.array([o, o]) for o in obs) if isinstance(obs, tuple) else np.array([obs, obs])
    batch_masks = {"mask": np.array([info["action_mask"]] * 2)} if policy.masked else {}
    np.testing.assert_array_equal(policy.act(batch, **batch_masks), [action, action])
    assert np.shape(policy.value(obs)) == ()
    assert len(ppox.evaluate(policy, episodes=2)) == 2


def test_act_and_eval_default_to_the_same_mode():
    from ppox.cli import Eval

    assert inspect.signature(ppox.Policy.act).parameters["deterministic"].default is True
    assert inspect.signature(ppox.evaluate).parameters["deterministic"].default is True
    assert Eval.__dataclass_fields__["deterministic"].default is True


def test_an_env_from_python_names_the_run(tmp_path):
    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path)), env=toy_envs.Countdown)
    assert result.config.env == "tests.toy_envs:Countdown"  # an entry point: the run can rebuild its env
    assert result.run_path.name.startswith("tests.toy_envs-Countdown__0__")
    assert json.loads((result.run_path / "config.json").read_text())["env"] == "tests.toy_envs:Countdown"
    instance = ppox.train(ppox.Config(**{**QUICK, "num_envs": 1}, save=False), env=gym.make("MountainCar-v0"))
    assert instance.config.env == "MountainCar-v0"
    factory = ppox.train(ppox.Config(**QUICK, save=False), env=lambda: gym.make("Acrobot-v1"))
    assert factory.config.env == "Acrobot-v1"


def test_any_name_labels_an_env_object_and_a_run_that_cannot_rebuild_its_env_says_so(tmp_path):
    result = ppox.train(ppox.Config(env="my-robot", **QUICK, run_dir=str(tmp_path), run_name="m"),
                        env=toy_envs.countdown)
    assert result.config.env == "my-robot"
    with pytest.raises(ConfigError, match="unknown environment 'my-robot'"):
        ppox.train(ppox.Config(env="my-robot", **QUICK, save=False))  # no env object: the name must be an env
    proc = ppox_cli("eval", str(result.run_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and "cannot be rebuilt" in err, err


def test_unknown_ids_try_the_packages_that_register_them(monkeypatch):
    from ppox.envs import registry

    monkeypatch.setitem(registry.PLUGINS, "FakePlugin-", "tests.fake_plugin")
    assert "FakePlugin-v0" not in gym.registry
    result = ppox.train(ppox.Config(env="FakePlugin-v0", **QUICK, save=False))
    assert result.config.env == "FakePlugin-v0" and result.spec.action_kind == "discrete"
    find_spec = registry.importlib.util.find_spec  # as if ale-py were not installed
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None if name == "ale_py" else find_spec(name))
    with pytest.raises(ConfigError, match=r'pip install "ppox\[atari\]" to register it'):
        registry.check_env_id("ALE/NoSuchGame-v5")


def test_an_unknown_id_names_at_most_three_suggestions():
    from ppox.envs.registry import check_env_id

    for name in ("Breakout", "Pendulum", "zzzz-unknown"):
        with pytest.raises(ConfigError) as err:
            check_env_id(name)
        message = str(err.value)
        assert len(message) < 300 and message.count(" or ") <= 2, message


def test_an_entry_point_in_the_current_folder_imports_without_pythonpath(tmp_path):
    (tmp_path / "myenv.py").write_text(textwrap.dedent('''
        import gymnasium as gym
        import numpy as np

        class MyEnv(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
            action_space = gym.spaces.Discrete(2)

            def reset(self, *, seed=None, options=None):
                self.t = 0
                return np.zeros(2, np.float32), {}

            def step(self, action):
                self.t += 1
                return np.zeros(2, np.float32), float(action), self.t >= 20, False, {}
    '''))
    done = subprocess.run([sys.executable, "-c", "import sys; from ppox.cli import main; sys.exit(main())", "train",
                           "--env", "myenv:MyEnv", "--total-timesteps", "1024", "--no-progress", "--no-save"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PPOX_CACHE_DIR": "", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "myenv:MyEnv: 1,024 steps" in done.stdout


def test_an_env_without_a_time_limit_warns_and_max_episode_steps_ends_its_episodes(tmp_path, capsys):
    from ppox.cli import main

    assert main(["train", "--env", "CliffWalking-v1", "--total-timesteps", "20480", "--no-progress", "--no-save"]) == 0
    captured = capsys.readouterr()
    assert "no episode has ended in the first" in captured.err and "--max-episode-steps" in captured.err
    assert "no episode finished" in captured.out and "nan" not in captured.out
    result = ppox.train(ppox.Config(env="CliffWalking-v1", **{**QUICK, "total_timesteps": 4096},
                                    max_episode_steps=50, save=False))
    assert np.nansum(result.metrics["episode_count"]) >= 4096 // 50 - 2
    assert set(np.unique(result.metrics["episode_length"][np.isfinite(result.metrics["episode_length"])])) <= \
        set(np.arange(1, 51))


def test_evaluation_of_an_env_without_a_time_limit_ends(tmp_path, capsys):
    result = ppox.train(ppox.Config(env="CliffWalking-v1", **QUICK, run_dir=str(tmp_path), run_name="c"))
    returns = ppox.evaluate(ppox.load(result.run_path), episodes=2, max_episode_steps=300)
    assert len(returns) == 2
    assert "cut at the step cap of 300" in capsys.readouterr().err


def test_gymnax_envs_take_max_episode_steps_too():
    result = ppox.train(ppox.Config(env="CartPole-v1", **QUICK, max_episode_steps=20, save=False))
    lengths = result.metrics["episode_length"]
    assert np.nanmax(lengths) <= 20


def test_an_interrupted_summary_counts_the_steps_done_and_asked_steps_are_rounded(tmp_path, capsys, monkeypatch):
    import ppox.run.loop as loop
    from ppox.cli import main
    from tests.helpers import stop_after_checks

    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(3))
    assert main(["train", "--total-timesteps", "50000", "--checkpoint-every", "512", "--no-progress",
                 "--run-dir", str(tmp_path), "--run-name", "cut"]) == 0
    captured = capsys.readouterr()
    assert "--total-timesteps 50,000 is 97 updates of num_envs * num_steps = 512: training 49,664 steps" in captured.err
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["interrupted"] and summary["total_timesteps"] == 3 * 512 and summary["planned_timesteps"] == 49664
    assert "1,536 steps" in captured.out


def test_a_run_that_fails_its_checks_leaves_no_folder(tmp_path):
    proc = ppox_cli("train", "--devices", "2", "--num-envs", "4", "--run-dir", str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--devices 2" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.long
def test_video_without_a_display_renders_off_screen(tmp_path, monkeypatch):
    pytest.importorskip("moviepy")
    pytest.importorskip("mujoco")
    result = ppox.train(ppox.Config.preset("HalfCheetah-v5", total_timesteps=2048, run_dir=str(tmp_path),
                                           run_name="hc", progress=False, tensorboard=False))
    env = {"PATH": "/usr/bin:/bin", "PPOX_CACHE_DIR": "", "PYTHONPATH": str(ROOT)}  # no DISPLAY, no MUJOCO_GL
    done = subprocess.run([sys.executable, "-m", "ppox.cli", "eval", str(result.run_path), "--episodes", "1",
                           "--video", "--max-episode-steps", "50"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    videos = list((result.run_path / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1000


def test_video_without_any_off_screen_opengl_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    pytest.importorskip("moviepy")
    from ppox.acting import evaluation

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(evaluation.ctypes.util, "find_library", lambda name: None)
    result = ppox.train(ppox.Config(env="Pendulum-v1", driver="host", **QUICK, run_dir=str(tmp_path), run_name="p"))
    with pytest.raises(ConfigError, match="MUJOCO_GL=egl"):
        ppox.evaluate(ppox.load(result.run_path), episodes=1, video_folder=result.run_path / "videos")
    assert not (result.run_path / "videos").exists()


def test_plots_label_their_axes_and_show_the_spread_of_seeds(tmp_path):
    from ppox.experiments.plots import PANELS, plot_runs, pyplot

    result = ppox.train(ppox.Config(**{**QUICK, "total_timesteps": 4096}, seeds=3, run_dir=str(tmp_path),
                                    run_name="s"))
    plt = pyplot()
    created = []
    original = plt.subplots
    plt.subplots = lambda *a, **k: created.append(original(*a, **k)) or created[-1]
    try:
        plot_runs([result.run_path], tmp_path / "plot")
    finally:
        plt.subplots = original
    fig, axes = created[0]
    used = axes.ravel()[:len(PANELS)]
    assert all(ax.get_ylabel() for ax in used)
    assert all(ax.collections for ax in used)  # a band per panel for the 3 seeds
    assert "mean of 3 seeds, 95% band" in used[0].get_lines()[0].get_label()
    assert (tmp_path / "plot.png").exists()


def test_explain_clip_names_the_clipped_segment(tmp_path):
    from ppox.experiments.plots import explain_clip, pyplot

    plt = pyplot()
    created = []
    original = plt.subplots
    plt.subplots = lambda *a, **k: created.append(original(*a, **k)) or created[-1]
    try:
        explain_clip(0.2, tmp_path / "clip")
    finally:
        plt.subplots = original
    for ax in created[0][1]:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("clipped segment" in label for label in labels), labels


def test_tensorboard_comes_with_an_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("tensorboard") for req in extras["tensorboard"])
    assert 'pip install -e ".[tensorboard]"' in (ROOT / "README.md").read_text()


@pytest.mark.long
@pytest.mark.learning
def test_the_mountaincar_preset_learns():
    """The RL Zoo's hyperparameters: about -115 at 1M steps on both drivers (4 fused seeds -115.4 to -116.7,
    host seed 0 -114.6); the old preset never beat -200."""
    result = ppox.train(ppox.Config.preset("MountainCar-v0", save=False, progress=False))
    assert result.final_return()[0] > -140
