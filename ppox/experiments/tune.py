"""``ppox tune``: a hyperparameter search with Optuna (``pip install "ppox[tune]"``).

The search space is given as for ``ppox sweep`` (ranges ``low:high``, log-uniform when 0 < low; comma lists
are categorical). TPE proposes the trials; a median pruner stops a trial whose return, at a point of the run,
is below the median of the earlier trials at that point. The study lives in a SQLite file in the tune folder,
so a killed study, run again with the same command, continues where it stopped (a trial cut short is marked
failed and not counted). On the fused driver ``--batch-trials K`` runs K trials x seeds as one program
(``--members vmap``: vectorised over them; ``map``: one after another, exact; ``auto``: as in ``ppox sweep``).

Objective: the mean over ``--seeds`` of the final return (the training episodes of the last tenth of the run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from ppox.agent.metrics import final_return, weighted_return
from ppox.config.config import Config, static_config
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError
from ppox.experiments.plots import plot_study
from ppox.experiments.sweep import Display, evaluate_config, members_mode, run_members
from ppox.experiments.sweep_folder import check_envs, lock_folder, read_json
from ppox.experiments.sweep_report import interval
from ppox.experiments.sweep_space import Space, describe, distribution, from_choice, is_number, suggest
from ppox.run.training import train
from ppox.storage.runfolder import LOCK_FILE
from ppox.utils.files import atomic_write_text
from ppox.utils.signals import StopOnSignal

SPEC_FILE = "tune.json"
STUDY_FILE = "study.db"
OPTUNA_TABLES = {"studies", "study_directions", "trials", "trial_params", "trial_values", "version_info"}


def optuna_module():
    """optuna, or a ConfigError that names the extra to install."""
    try:
        import optuna
    except ImportError:
        raise ConfigError('ppox tune needs Optuna: pip install "ppox[tune]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclasses.dataclass(frozen=True)
class TunePlan:
    space: Space
    trials: int = 32
    timeout: float | None = None  # seconds; no new trials start after it
    seeds: int = 2
    batch_trials: int = 1  # fused: trials per program call
    sampler_seed: int = 0
    check_seeds: int = 4  # fresh seeds on which the best trial and the preset are compared at the end
    members: str = "auto"  # fused: vmap, map or auto, as in ppox sweep

    def spec(self) -> dict:
        return {
            "base": json.loads(self.space.base.to_json()),
            "axes": [a.to_json() for a in self.space.axes],
            "seeds": self.seeds,
        }


def check_tune_folder(plan: TunePlan, folder: Path) -> None:
    """ConfigError unless FOLDER can hold this study: absent, empty, or holding this very study (its tune.json
    the same search, its study.db an Optuna study of it and nothing else). Reads only."""
    if not folder.is_dir():
        if os.path.lexists(folder):
            raise ConfigError(f"{folder} is not a folder; choose another --out")
        return
    names = sorted(set(os.listdir(folder)) - {LOCK_FILE})
    if names and SPEC_FILE not in names:
        raise ConfigError(f"{folder} holds {names[0]!r} but no {SPEC_FILE}: it is no tune folder; choose another --out")
    if names and read_json(folder / SPEC_FILE, "choose another --out") != json.loads(json.dumps(plan.spec())):
        raise ConfigError(f"{folder} holds another study (its {SPEC_FILE} differs); choose another --out")
    if STUDY_FILE in names:
        check_study_file(folder / STUDY_FILE)


def check_study_file(path: Path) -> None:
    """ConfigError unless ``path`` is a sound SQLite file holding Optuna's tables and one study, ppox's: a
    foreign file is never written to."""
    why = ""
    try:
        if path.is_symlink() or not path.is_file():
            why = "not a plain file"
        else:
            with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not OPTUNA_TABLES <= tables:
                    why = "a SQLite file without Optuna's tables"
                elif [row[0] for row in db.execute("SELECT study_name FROM studies")] != ["ppox"]:
                    why = "its studies are not the one named ppox"
                elif db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    why = "a damaged SQLite file"
    except sqlite3.Error as err:
        why = str(err)
    if why:
        raise ConfigError(f"{path} is not the Optuna study of this tune ({why}); choose another --out")


def open_study(plan: TunePlan, folder: Path):
    """The study in FOLDER/study.db (made, or loaded: this tune's only, see ``check_tune_folder``); the running
    trials failed (call it holding the folder's lock: a running trial is then a stale one)."""
    optuna = optuna_module()
    check_tune_folder(plan, folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / SPEC_FILE, json.dumps(plan.spec(), indent=1))
    path, updates = folder / STUDY_FILE, plan.space.base.num_updates
    try:
        study = optuna.create_study(
            study_name="ppox", storage=f"sqlite:///{path}", load_if_exists=True, direction="maximize"
        )
        check_trials(optuna, study, plan, path)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError, optuna.exceptions.OptunaError) as err:
        line = (str(err).splitlines() or [""])[0][:100]
        raise ConfigError(
            f"{path} is no readable Optuna study ({type(err).__name__}: {line}); choose another --out"
        ) from None
    study.sampler = optuna.samplers.TPESampler(seed=plan.sampler_seed + len(study.trials))
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, updates // 4))
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    return optuna, study


def check_trials(optuna, study, plan: TunePlan, path: Path) -> None:
    """ConfigError unless the study maximises and every parameter of its trials is drawn from this tune's axes,
    inside their ranges or lists: nothing read back names a value that the user's flags did not allow."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"{path} is not a study of this tune (it minimises); choose another --out")
    expected = {a.name: distribution(optuna, a) for a in plan.space.axes}
    for trial in study.get_trials(deepcopy=False):
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            ranged = not isinstance(dist, optuna.distributions.CategoricalDistribution)
            if dist != expected.get(name) or (ranged and not (is_number(value) and dist.low <= value <= dist.high)):
                raise ConfigError(
                    f"{path}: trial {trial.number} has {str(name)[:40]} = {str(value)[:40]}, outside this tune's "
                    "search space; choose another --out"
                )


def counted(optuna, study) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def run_study(plan: TunePlan, folder: Path, progress: bool = True) -> dict:
    """Run trials until ``plan.trials`` are complete or pruned (earlier runs of the study count), the timeout,
    or a signal; then write the best config, the plots and the comparison with the preset. ConfigError (one
    line) before anything is made or run: an env that cannot be made, a folder that holds something else or
    that another ppox process is writing."""
    folder = Path(folder)
    check_envs([plan.space.base])
    lock = lock_folder(folder, lambda: check_tune_folder(plan, folder))
    try:
        optuna, study = open_study(plan, folder)
        base = plan.space.base
        fused = driver_for(base.env, base.driver, base.ray) == "fused"
        start = time.perf_counter()
        with Display(plan.trials, progress) as display, StopOnSignal() as stop:
            display.advance(counted(optuna, study))
            while counted(optuna, study) < plan.trials and not stop.requested:
                if plan.timeout is not None and time.perf_counter() - start > plan.timeout:
                    break
                k = min(plan.batch_trials if fused else 1, plan.trials - counted(optuna, study))
                trials = [study.ask() for _ in range(k)]
                configs = [plan.space.config({a.name: suggest(t, a) for a in plan.space.axes}) for t in trials]
                (run_fused_trials if fused else run_host_trial)(optuna, study, plan, trials, configs, display, stop)
                display.describe(_best_line(optuna, study))
        return finish(optuna, study, plan, folder)
    finally:
        lock.release()


def run_fused_trials(optuna, study, plan: TunePlan, trials, configs, display, stop) -> None:
    """Trials x seeds as members of one program per static combination; each trial reports its return per chunk
    and is told pruned once the pruner says so (its members run on to the batch's end, unless all are pruned)."""
    groups: dict[Config, list[int]] = {}
    for k, config in enumerate(configs):
        groups.setdefault(static_config(config), []).append(k)
    for static, ks in groups.items():
        members = [configs[k].replace(seed=configs[k].seed + s) for k in ks for s in range(plan.seeds)]
        pruned: set[int] = set()

        def on_chunk(metrics, done, ks=ks, pruned=pruned):
            for j, k in enumerate(ks):
                rows = slice(j * plan.seeds, (j + 1) * plan.seeds)
                recent = weighted_return(metrics["episode_return"][rows, -5:], metrics["episode_count"][rows, -5:])
                if k not in pruned and np.isfinite(recent):
                    trials[k].report(float(recent), done)
                    if trials[k].should_prune():
                        pruned.add(k)
            return len(pruned) == len(ks)

        metrics, _ = run_members(static, members, members_mode(plan.members), Display(0, False), stop, on_chunk)
        for j, k in enumerate(ks):
            if k in pruned:
                study.tell(trials[k], state=optuna.trial.TrialState.PRUNED)
            elif metrics is None:
                study.tell(trials[k], state=optuna.trial.TrialState.FAIL)
            else:
                rows = slice(j * plan.seeds, (j + 1) * plan.seeds)
                _tell(optuna, study, trials[k], final_return({n: v[rows] for n, v in metrics.items()}))
            display.advance(1 if metrics is not None or k in pruned else 0)


def run_host_trial(optuna, study, plan: TunePlan, trials, configs, display, stop) -> None:
    """One trial on the host driver: its seeds one after another in this process; pruned between seeds."""
    trial, config, finals = trials[0], configs[0], []
    for s in range(plan.seeds):
        result = train(config.replace(seed=config.seed + s, save=False, progress=False))
        if result.interrupted:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        finals.append(float(result.final_return()[0]))
        trial.report(float(np.nanmean(finals)), s)
        if s + 1 < plan.seeds and trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            display.advance(1)
            return
    _tell(optuna, study, trial, np.array(finals))
    display.advance(1)


def _tell(optuna, study, trial, finals: np.ndarray) -> None:
    finite = finals[np.isfinite(finals)]
    if finite.size:
        study.tell(trial, float(finite.mean()))
    else:  # no episode ended: nothing to compare
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _best_line(optuna, study) -> str:
    try:
        return f"best so far {study.best_value:.1f} (trial {study.best_trial.number})"
    except ValueError:
        return "no trial finished yet"


def best_config(study, plan: TunePlan) -> Config:
    params = study.best_trial.params
    return plan.space.config(
        {a.name: params[a.name] if a.is_range else from_choice(a, params[a.name]) for a in plan.space.axes}
    )


def finish(optuna, study, plan: TunePlan, folder: Path) -> dict:
    """best_config.json, importance.png, history.png, trials.json, and the best against the preset on fresh seeds."""
    done = counted(optuna, study)
    summary = {"trials_counted": done, "trials_asked": plan.trials, "folder": str(folder)}
    try:
        best = best_config(study, plan)
    except ValueError:
        return {**summary, "best": None}
    atomic_write_text(folder / "best_config.json", best.to_json())
    plot_study(study, folder)
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
        for t in study.get_trials(deepcopy=False)
    ]
    atomic_write_text(folder / "trials.json", json.dumps(trials, indent=1))
    summary.update(
        best_value=study.best_value,
        best_trial=study.best_trial.number,
        best=describe({a.name: getattr(best, a.name) for a in plan.space.axes}),
    )
    if plan.check_seeds:
        summary["check"] = compare_with_preset(best, plan)
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1))
    return summary


def compare_with_preset(best: Config, plan: TunePlan, first_seed: int = 10_000) -> dict:
    """Train the best config and the env's preset (with the same fixed flags) on ``check_seeds`` seeds no trial
    used; their final returns, mean and 95% interval."""
    base = plan.space.base
    preset = Config.preset(base.env, total_timesteps=base.total_timesteps, driver=base.driver)
    out = {}
    for name, config in (("best", best), ("preset", preset)):
        finals = evaluate_config(config, plan.check_seeds, first_seed)
        mean, low, high = interval(finals)
        out[name] = {"final_return_per_seed": finals, "mean": mean, "ci95": [low, high]}
    return out
