"""A config as a file: Config.load(path) and ppox train --config FILE (flags override the file)."""

import json

import pytest

import ppox.run.training
from ppox.cli import main
from ppox.config.config import Config, ConfigError


def test_load_reads_back_what_to_json_wrote(tmp_path):
    config = Config.preset("Acrobot-v1", learning_rate=1e-3, hidden_sizes=(32,), target_kl=0.02)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert Config.load(path) == config


def test_a_partial_file_takes_the_defaults_for_the_rest(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"env": "Acrobot-v1", "ent_coef": 0.0}))
    assert Config.load(path) == Config(env="Acrobot-v1", ent_coef=0.0)


@pytest.mark.parametrize("text, fragment", [
    ('{"learnin_rate": 1e-3}', "did you mean 'learning_rate'"),
    ('{"learning_rate": -1}', "--learning-rate must be a positive number"),
    ('{"hidden_sizes": "64"}', "--hidden-sizes must be a list of integers"),
    ('{"learning_rate": ', "is not valid JSON"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="c.json") as err:
        Config.load(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file .*config.json"):
        Config.load(tmp_path / "nope.json")


@pytest.fixture
def trained(monkeypatch):
    """ppox train's command line up to the Config it would train (the training itself replaced)."""
    seen = []

    def fake_train(config):
        seen.append(config)
        raise ConfigError("stop here")

    monkeypatch.setattr(ppox.run.training, "train", fake_train)
    return seen


def test_cli_flags_override_the_file(tmp_path, trained, capsys):
    path = tmp_path / "c.json"
    path.write_text(Config.preset("Acrobot-v1", learning_rate=1e-3, ent_coef=0.05).to_json())
    assert main(["train", "--config", str(path), "--ent-coef", "0.02", "--seed", "7"]) == 2
    assert trained == [Config.preset("Acrobot-v1", learning_rate=1e-3, ent_coef=0.02, seed=7)]
    assert main(["train", f"--config={path}"]) == 2
    assert trained[-1] == Config.preset("Acrobot-v1", learning_rate=1e-3, ent_coef=0.05)


def test_cli_config_errors_exit_2_in_one_line(tmp_path, trained, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"num_minibatches": 3}')
    assert main(["train", "--config", str(path)]) == 2
    assert main(["train", "--config"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "c.json: num_envs * num_steps = 512 does not divide into --num-minibatches 3" in err[0]
    assert "--config needs a JSON file" in err[1]
    assert trained == []


def test_an_entry_point_in_a_file_needs_confirming(tmp_path, trained, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"env": "tests.fake_plugin:FakeEnv"}))
    assert main(["train", "--config", str(path)]) == 2
    assert "entry point" in capsys.readouterr().err and trained == []
    main(["train", "--config", str(path), "--trust-run-config"])
    assert trained and trained[-1].env == "tests.fake_plugin:FakeEnv"


def test_a_run_folder_is_read_through_its_config_json_and_its_run_name_is_not_kept(tmp_path, trained, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(Config(ent_coef=0.02, run_name="taken").to_json())
    assert Config.load(run) == Config(ent_coef=0.02, run_name="taken")
    main(["train", "--config", str(run)])
    assert trained[-1] == Config(ent_coef=0.02)  # a new run: the folder named 'taken' holds one already
    main(["train", "--config", str(run), "--run-name", "again"])
    assert trained[-1].run_name == "again"
