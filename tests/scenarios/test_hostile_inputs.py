"""Hostile input, second pass (issue 32): sizes that would exhaust memory, integer flags given inf, nan or
thousands of digits, config files that break the JSON reader, envs that break the contract after their first
steps, and a policy file whose config names another env than its arrays fit. Each is one line saying what to
change (exit 2 at the command line), before any work starts."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import ppox
from ppox.config import memory as memory_check
from ppox.errors import CheckpointError, ConfigError
from tests.helpers import QUICK

GB = 2**30


def run_cli(args, tmp_path, capsys) -> str:
    """`ppox ARGS` in this process (train: into tmp_path/runs); asserts exit 2, one line, no traceback, no run
    folder; returns the line."""
    from ppox.cli import main

    if args[0] == "train":
        args = [*args, "--run-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    return err


# Sizes that would exhaust memory ------------------------------------------------------------------------------


@pytest.fixture
def machine_of_16_gb(monkeypatch):
    """The memory check sees a machine of 16 GiB, whatever this one has."""
    from ppox.drivers import base

    monkeypatch.setattr(memory_check, "machine_memory", lambda: 16 * GB)
    monkeypatch.setattr(base, "machine_memory", lambda: 16 * GB)


TOO_LARGE = {  # settings -> the flag the message names (on a 16 GiB machine)
    "hidden sizes": (dict(hidden_sizes=(100_000,) * 3), "--hidden-sizes"),
    "recurrent cell": (dict(memory="gru", memory_size=1_000_000), "--memory-size"),
    "envs": (dict(num_envs=10**8, num_steps=1, num_minibatches=1, total_timesteps=10**9), "--num-envs"),
    "rollout": (dict(num_envs=4, num_steps=10**9, num_minibatches=10**6, total_timesteps=4 * 10**9), "--num-steps"),
    "seeds": (dict(seeds=10**6), "--seeds"),
}


@pytest.mark.parametrize("case", sorted(TOO_LARGE))
def test_sizes_that_exhaust_memory_are_refused_from_the_config(case, machine_of_16_gb, tmp_path, capsys):
    settings, flag = TOO_LARGE[case]
    with pytest.raises(ConfigError, match=f"needs at least .* GB of memory .* more than this machine's 17.2 GB.*{flag}"):
        ppox.Config(**settings)  # (before: built, and the run died of an out-of-memory error, or swapped)
    if case == "hidden sizes":
        err = run_cli(["train", "--hidden-sizes", "100000", "100000", "100000"], tmp_path, capsys)
        assert "640.0 GB" in err and "--hidden-sizes" in err


def test_every_preset_fits_a_small_machine(machine_of_16_gb):
    from ppox.config.config import PRESETS

    for env in PRESETS:
        need = sum(memory_check.memory_need(ppox.Config.preset(env)).values())
        assert need < 0.1 * GB, env


def test_the_check_is_repeated_with_the_env_s_observations_before_the_buffers(machine_of_16_gb):
    """Observations of 100,000 numbers: fine for the config alone (checked with the smallest env's), 3.2 TB of
    rollout buffers with them; refused when the env's spec is known, before the learner or buffers are made."""
    import resource

    config = ppox.Config(**{**QUICK, "num_steps": 10**6, "total_timesteps": 4 * 10**6, "save": False})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match="rollout buffers: 3,200.1 GB.*lower --num-envs or --num-steps"):
        ppox.train(config, env=lambda: WideObservation())
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_000_000  # KiB: nothing like 3 TB


class WideObservation(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (100_000,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return np.zeros(100_000, np.float32), {}

    def step(self, action):
        return np.zeros(100_000, np.float32), 0.0, False, False, {}


# Integer flags given inf, nan, fractions or huge numbers -------------------------------------------------------

FLAGS = {  # args -> what the line says (before: a traceback, a hang, or advice to call sys.set_int_max_str_digits)
    "inf": (["train", "--seeds", "inf"], "--seeds must be a whole number (such as 4 or 1e6), got 'inf'"),
    "nan": (["train", "--num-envs=nan"], "--num-envs must be a whole number"),
    "fraction in a list": (["train", "--hidden-sizes", "64", "2.5"], "--hidden-sizes must be a whole number"),
    "5000 digits": (["train", "--seeds", "9" * 5000], "--seeds must be below 1e40, got a number of 5000 digits"),
    "exponent past decimal's range": (["train", "--learning-rate", "1e99999999999999999999"], "--learning-rate"),
    "int32 time limit": (["train", "--max-episode-steps", "1e29"], "--max-episode-steps must be below 2^31"),
    "cell size past a C long": (["train", "--memory", "gru", "--memory-size", "1e20"], "--memory-size must be below 2^63"),
    "eval episodes": (["eval", "RUN", "--episodes", "inf"], "--episodes must be a whole number"),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_integer_flags_given_inf_nan_or_huge_numbers_are_one_line(case, tmp_path, capsys):
    args, message = FLAGS[case]
    err = run_cli([str(tmp_path) if a == "RUN" else a for a in args], tmp_path, capsys)
    assert message in err and "set_int_max_str_digits" not in err, err


def test_huge_integers_in_a_config_are_refused_before_they_are_used():
    for field, value in [("seeds", 10**29), ("max_episode_steps", 10**29), ("checkpoint_every", 10**400)]:
        with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} must be below 2\\^"):
            ppox.Config(**{field: value})  # (before: built; then a hang, an OverflowError inside JAX)
    with pytest.raises(ConfigError, match="--seed must be below 2\\^63, got a number of 4000\\+ digits"):
        ppox.Config(seed=10**4000)  # (its repr alone would be refused by Python)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    return ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path_factory.mktemp("runs")), run_name="cp")).run_path


@pytest.mark.parametrize("flag, value", [("--seed", "1e20"), ("--episodes", "1e30")])
def test_eval_seeds_and_episodes_past_what_ppox_counts_are_one_line(cartpole_run, tmp_path, capsys, flag, value):
    err = run_cli(["eval", str(cartpole_run), flag, value], tmp_path, capsys)  # (before: OverflowError; a hang)
    assert f"{flag} must be" in err and "2^31" in err, err


# Config files that break the JSON reader ------------------------------------------------------------------------

CONFIG_FILES = {  # name -> (bytes, what the line says)
    "invalid UTF-8": (b'\xff\xfe{"seed": 1}', "is not UTF-8 text (byte 0xff at offset 0)"),
    "200k brackets": (b"[" * 200_000 + b"]" * 200_000, "nests its JSON too deeply"),
    "5000-digit integer": (b'{"seed": ' + b"9" * 5000 + b"}", "holds an integer of more than 4300 digits"),
    "nested field": (b'{"hidden_sizes": ' + b"[" * 500 + b"]" * 500 + b"}", "--hidden-sizes must be a list of"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_config_files_that_break_the_json_reader_are_one_line(case, tmp_path, capsys):
    data, message = CONFIG_FILES[case]
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        ppox.Config.load(path)  # (before: UnicodeDecodeError, RecursionError, ValueError)
    err = run_cli(["train", "--config", str(path)], tmp_path, capsys)
    assert message in err and len(err) < 400, err


def test_an_env_name_of_100k_characters_is_said_in_a_short_line(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"env": "x" * 100_000}))
    err = run_cli(["train", "--config", str(path)], tmp_path, capsys)  # (before: the whole name, after seconds)
    assert "(100,000 characters)" in err and len(err) < 200, err


def test_a_config_file_too_large_to_be_one_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(2**40)  # a sparse terabyte
    with pytest.raises(ConfigError, match="larger than a config file can be"):
        ppox.Config.load(path)


# Envs that break the contract after their first steps -----------------------------------------------------------


class LateBreaker(gym.Env):
    """Keeps the contract for four steps (each env's first step is checked in full), then breaks it as ``broken``
    says; ``broken`` None: never."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Discrete(2)
    broken: tuple | None = None

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        good = (np.zeros(3, np.float32), 0.5, False, self.t % 50 == 0, {})
        return good if self.broken is None or self.t < 5 else self.broken


class ShapeChangesMidEpisode(LateBreaker):
    broken = (np.zeros(5, np.float32), 0.5, False, False, {})


class NoneObservationLater(LateBreaker):
    broken = (None, 0.5, False, False, {})


class ArrayRewardLater(LateBreaker):
    broken = (np.zeros(3, np.float32), np.array([0.5, 0.5]), False, False, {})


class NoneFinalObservation(LateBreaker):
    broken = (None, 0.5, True, False, {})


class ArrayTruncatedLater(LateBreaker):
    broken = (np.zeros(3, np.float32), 0.5, False, np.array([False, True]), {})


LATE = {
    ShapeChangesMidEpisode: "an observation that does not fit .*expected shape \\(3,\\), got shape \\(5,\\)",
    NoneObservationLater: "an observation that does not fit .*got None",
    ArrayRewardLater: "reward ndarray array\\(\\[0.5, 0.5\\]\\); a Gymnasium env's step returns one number",
    NoneFinalObservation: "an observation that does not fit .*got None",
    ArrayTruncatedLater: "truncated ndarray .*one bool each as terminated and truncated",
}


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("env", list(LATE), ids=lambda env: env.__name__)
def test_an_env_that_breaks_the_contract_after_its_first_steps_is_one_clear_line(env, num_envs):
    config = ppox.Config(num_envs=num_envs, num_steps=16, num_minibatches=1, total_timesteps=64, save=False,
                         progress=False)
    with pytest.raises(ConfigError, match=f"env {env.__name__}: step\\(\\) returned " + LATE[env]):
        ppox.train(config, env=env)  # (before: a ValueError from deep inside the collector, or a NaN)


@pytest.mark.parametrize("env, message", [(ShapeChangesMidEpisode, "step\\(\\) in its subprocess failed: could "
                                                                 "not broadcast .* \\(5,\\) into shape \\(3,\\)"),
                                          (ArrayRewardLater, "step\\(\\) returned rewards shaped \\(2,\\)")],
                         ids=["shape", "reward"])
def test_envs_stepped_in_subprocesses_say_it_in_one_line_too(env, message):
    config = ppox.Config(num_envs=2, num_steps=16, num_minibatches=1, total_timesteps=64, save=False, progress=False,
                         vec="async")
    with pytest.raises(ConfigError, match=f"env {__name__}:{env.__name__}: {message}"):
        ppox.train(config, env=env)  # (before: Gymnasium's warnings and a ValueError)


def test_the_command_line_says_it_in_one_line(tmp_path, capsys):
    env = f"{__name__}:ShapeChangesMidEpisode"
    err = run_cli(["train", "--env", env, "--num-envs", "2", "--num-steps", "16", "--total-timesteps", "64"],
                  tmp_path, capsys)
    assert "expected shape (3,), got shape (5,)" in err


def test_evaluation_checks_every_step_too():
    result = ppox.train(ppox.Config(num_envs=2, num_steps=16, num_minibatches=1, total_timesteps=32, save=False,
                                    progress=False), env=LateBreaker)
    for env, pattern in LATE.items():
        with pytest.raises(ConfigError, match=pattern):
            ppox.evaluate(result.policy(), env=env, episodes=1)  # (before: a ValueError from the policy)


# A policy file whose config names another env than its arrays fit -----------------------------------------------


def rewrite_env(path, env: str) -> None:
    """A crafted policy file: its config names ``env``; its checksums, where it has them, written again."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from ppox.utils import tensorfile

    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    metadata["config"] = json.dumps({**json.loads(metadata["config"]), "env": env})
    for key in (getattr(tensorfile, "CHECKSUM", ""), getattr(tensorfile, "HEADER_CHECKSUM", "")):
        metadata.pop(key, None)
    seal = getattr(tensorfile, "sealed", None)
    save_file(arrays, str(path), metadata=seal(arrays, metadata) if seal else metadata)


@pytest.mark.parametrize("env", ["Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar"])
def test_eval_of_a_policy_whose_config_names_another_env_names_both(cartpole_run, tmp_path, capsys, env):
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(cartpole_run, run)
    rewrite_env(run / "policy.safetensors", env)
    with pytest.raises(CheckpointError, match=f"its config names env {env}, but the policy's arrays are for "
                                              "observations shaped \\[4\\] and 2 discrete actions, while env"):
        ppox.evaluate(ppox.load(run), episodes=1)  # (before: a ValueError from the policy, or from inside jit)
    err = run_cli(["eval", str(run), "--episodes", "1"], tmp_path, capsys)
    assert "[4] and 2 discrete actions" in err and env in err


def test_eval_on_another_env_than_the_policy_s_is_a_config_error(cartpole_run):
    with pytest.raises(ConfigError, match="while env Acrobot-v1 has observations shaped \\[6\\] and 3 discrete"):
        ppox.evaluate(ppox.load(cartpole_run), env="Acrobot-v1", episodes=1)
    assert len(ppox.evaluate(ppox.load(cartpole_run), episodes=2)) == 2  # its own env still evaluates


def test_the_fused_driver_repeats_the_check_with_its_env(machine_of_16_gb):
    """The same check on the fused driver, from the JAX env's spec before the runner is made: Breakout-MinAtar's
    10x10x4 float32 observations in a rollout of 4 x 3 x 10^6 steps need tens of GB of rollout buffers; the config
    alone, checked with the smallest env's observations, fits in 16 GiB."""
    config = ppox.Config(**{**QUICK, "env": "Breakout-MinAtar", "num_steps": 3 * 10**6, "total_timesteps": 12 * 10**6,
                            "num_minibatches": 256, "save": False})
    memory_check.check_memory_need(config, (1,), 4, 3, 16 * GB)  # (the config alone fits)
    with pytest.raises(ConfigError, match="rollout buffers.*lower --num-envs or --num-steps"):
        ppox.train(config)
