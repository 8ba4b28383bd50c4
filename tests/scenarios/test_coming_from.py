"""docs/coming-from-sb3-cleanrl.md: every code block runs as written, with smaller budgets.

Python blocks run in this process, in a fresh folder, in order (later blocks may read the runs of earlier
ones, as a reader's session would); `total_timesteps` of 50,000 and 100,000 become 4,096 and 8,192, and
`checkpoint_every` 10,000 becomes 2,048. Bash blocks run their `ppox` commands with a few thousand steps;
their `pip install` lines must name extras that exist.
"""

import os
import re
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT

PAGE = (ROOT / "docs" / "coming-from-sb3-cleanrl.md").read_text()
SMALLER = {"100_000": "8_192", "50_000": "4_096", "10_000": "2_048"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE, re.S)


def smaller(code: str) -> str:
    for big, small in SMALLER.items():
        code = code.replace(f"total_timesteps={big}", f"total_timesteps={small}")
        code = code.replace(f"checkpoint_every={big}", f"checkpoint_every={small}")
    return code


def test_the_page_has_a_block_for_each_concept():
    titles = re.findall(r"^## (.*)$", PAGE, re.M)
    for concept in ("model.learn", "VecNormalize", "Callbacks", "model.save", "evaluate_policy", "--track"):
        assert any(concept in title for title in titles), concept
    assert len(blocks("python")) >= 7 and blocks("bash")


def test_every_python_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks("python")):
        code = smaller(code)
        assert code != blocks("python")[i] or "total_timesteps" not in code, "a budget was not made smaller"
        exec(compile(code, f"coming-from block {i + 1}", "exec"), {"__name__": f"block{i}"})
    out = capsys.readouterr().out
    assert "runs/" in out and "update" in out  # (a run folder's path; the header of evaluations.csv)
    assert (tmp_path / "runs" / "first" / "policy.safetensors").exists()
    assert (tmp_path / "runs" / "tuned" / "config.json").exists()


def test_every_shell_command_runs(tmp_path):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline",
           "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    for name in ("DATA", "CACHE", "CONFIG", "ARTIFACT"):
        env[f"WANDB_{name}_DIR"] = str(tmp_path / "wandb-home" / name.lower())
    ran = 0
    for line in "\n".join(blocks("bash")).splitlines():
        words = line.split()
        if words[:2] == ["pip", "install"]:
            named = re.search(r"\[(.*)\]", line).group(1).split(",")
            assert set(named) <= set(extras), named
            continue
        settings = [w for w in words if "=" in w and not w.startswith("-")]
        env.update(dict(w.split("=", 1) for w in settings))
        command = words[len(settings):]
        assert command[0] == "ppox", line
        proc = subprocess.run([sys.executable, "-m", "ppox.cli", *command[1:], "--total-timesteps", "2048",
                               "--no-progress", "--run-name", f"shell{ran}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        ran += 1
    assert ran and list((tmp_path / "runs" / "shell0" / "wandb").glob("offline-run-*"))
    assert (tmp_path / "mlruns").is_dir()


@pytest.mark.parametrize("name", ["ppox.StopOnReturn", "ppox.StopOnNoImprovement", "ppox.Callback",
                                  "ppox.evaluate", "ppox.resume"])
def test_the_names_the_page_uses_exist(name):
    import ppox

    assert name in PAGE and getattr(ppox, name.split(".")[1])
