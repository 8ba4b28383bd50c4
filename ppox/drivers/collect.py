"""Host-driver rollouts: a Gymnasium vector env stepped with the current policy, time-major.

``Collector`` is the host driver's per-step hot path, used in this process and inside each Ray
rollout worker for its share of the envs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from threadpoolctl import threadpool_limits

from ppox.agent.agent import is_recurrent, make_actor
from ppox.agent.networks import ActorCritic, RecurrentActorCritic
from ppox.config.config import Config
from ppox.envs.gym_envs import ObsEncoder, batch_of_one
from ppox.envs.masks import check_some_legal, legal
from ppox.envs.spec import EnvSpec, to_env_action
from ppox.errors import as_users, check_finite


class Rollout(NamedTuple):
    """num_steps vector steps collected on the host, time-major [T, num_envs, ...]."""

    obs: np.ndarray  # encoded observation the policy acted on (before normalisation; uint8 images stay uint8)
    actions: np.ndarray  # sampled, unclipped
    rewards: np.ndarray  # raw rewards
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray  # the true next observation (the final one where an episode ended), encoded
    masks: Any = None  # legal actions when acting, bool [T, N, sum(action_dims)]; None: no masks
    starts: Any = None  # recurrent policy: obs[t] begins an episode, bool [T, N]; else None
    carry: Any = None  # recurrent policy: each env's carry before the rollout's first step [N, ...]
    log_probs: Any = None  # log pi(a|s) when acting [T, N] (CNN actors); None: the update computes it
    values: Any = None  # V(s) when acting [T, N], with log_probs; else None


def final_observations(venv, encoder: ObsEncoder, next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """next_obs with each ended env's row replaced by its episode's final observation (SAME_STEP autoreset)."""
    final = next_obs.copy()
    for i in np.flatnonzero(done):
        final[i] = encoder(batch_of_one(venv.single_observation_space, info["final_obs"][i]))[0]
    return final


def empty_rollout(
    config: Config,
    spec: EnvSpec,
    num_envs: int,
    masked: bool = False,
    recurrent: bool = False,
    obs_dtype=np.float32,
    evaluated: bool = False,
) -> Rollout:
    """Buffers for one rollout, reused every update; observations in ``obs_dtype`` (uint8 for images: the
    network scales them, so a batch of Atari frames takes a quarter of the float32 memory); ``evaluated``:
    with buffers for the actor's log-probabilities and values."""
    T, N = config.num_steps, num_envs
    continuous = spec.action_kind == "continuous"
    action_shape = (
        (spec.action_dims[0],)
        if continuous
        else ((len(spec.action_dims),) if spec.action_kind == "multi_discrete" else ())
    )
    return Rollout(
        obs=np.zeros((T, N) + spec.obs_shape, obs_dtype),
        actions=np.zeros((T, N) + action_shape, np.float32 if continuous else np.int32),
        rewards=np.zeros((T, N), np.float32),
        terminated=np.zeros((T, N), bool),
        truncated=np.zeros((T, N), bool),
        next_obs=np.zeros((T, N) + spec.obs_shape, obs_dtype),
        masks=np.ones((T, N, sum(spec.action_dims)), bool) if masked else None,
        starts=np.zeros((T, N), bool) if recurrent else None,
        log_probs=np.zeros((T, N), np.float32) if evaluated else None,
        values=np.zeros((T, N), np.float32) if evaluated else None,
    )


class Collector:
    """Steps a vector env with the current policy for ``num_steps``.

    Owns the env, the NumPy (or jitted CNN) actor, the action random generator, the current
    observations and the running episode returns and lengths."""

    def __init__(
        self,
        config: Config,
        spec: EnvSpec,
        venv,
        network: ActorCritic | RecurrentActorCritic,
        rng: np.random.Generator,
        seed: int,
    ):
        self.config, self.spec, self.venv, self.rng = config, spec, venv, rng
        self.encoder = ObsEncoder(venv.single_observation_space)
        self.actor = make_actor(config, spec, network)
        self.recurrent = is_recurrent(network)
        # a jitted (CNN) actor's forward pass gives log pi and V too: kept, the update skips a pass over the batch
        self.evaluated = hasattr(self.actor, "act_and_evaluate") and not self.recurrent
        self.restart(seed)
        # masks where the env offers them (SyncEnvs reads them; ppox.envs.masks), for index actions only
        self.masked = (
            config.action_mask == "auto"
            and spec.action_kind != "continuous"
            and getattr(venv, "mask_source", None) is not None
        )
        self.buffers = empty_rollout(
            config, spec, venv.num_envs, self.masked, self.recurrent, self.obs.dtype, self.evaluated
        )

    def restart(self, seed: int) -> None:
        """Reset every env (env i gets seed + i) and forget the episodes in progress."""
        try:
            self.raw, _ = self.venv.reset(seed=seed)
        except Exception as err:  # noqa: BLE001  (the env's code may raise anything: shown as the env's)
            raise as_users(err, f"the env {self.config.env}")  # noqa: B904  (its cause: the env's error)
        self.obs = self.encoder(self.raw)
        self.episode_return = np.zeros(self.venv.num_envs)
        self.episode_length = np.zeros(self.venv.num_envs, np.int64)
        if self.recurrent:
            self.actor.restart(self.venv.num_envs)

    def first_obs(self) -> np.ndarray:
        return self.obs

    def collect(self, params, obs_stats) -> tuple[Rollout, list, list, int]:
        """(rollout [T, N, ...], returns and lengths of the episodes that ended in it, illegal actions taken).

        The actor's small matrix products run on one BLAS thread: a threaded BLAS makes such products far
        slower on a busy machine (docs/design-notes.md)."""
        with threadpool_limits(limits=1, user_api="blas"):
            return self.collect_steps(params, obs_stats)

    def collect_steps(self, params, obs_stats) -> tuple[Rollout, list, list, int]:
        self.actor.load(params, obs_stats)
        buffers, venv, encoder, actor, rng, spec = (
            self.buffers,
            self.venv,
            self.encoder,
            self.actor,
            self.rng,
            self.spec,
        )
        obs, episode_return, episode_length = self.obs, self.episode_return, self.episode_length
        finished_returns, finished_lengths, illegal = [], [], 0
        mask: Any = None  # legal actions of this step, with masks
        if self.recurrent:
            buffers = buffers._replace(carry=jax.device_get(actor.carry))
        for t in range(self.config.num_steps):
            buffers.obs[t] = obs
            if self.recurrent:
                buffers.starts[t] = actor.starts
            if self.masked:
                mask = buffers.masks[t] = self._legal_actions(t)
            if self.evaluated:
                action, buffers.log_probs[t], buffers.values[t] = actor.act_and_evaluate(obs, rng, mask)
            else:
                action = actor.act(obs, rng, mask)
            if self.masked:
                illegal += int((~legal(mask, action, spec.action_dims)).sum())
            buffers.actions[t] = action
            try:
                self.raw, reward, terminated, truncated, info = venv.step(to_env_action(spec, action))
            except Exception as err:  # noqa: BLE001  (the env's code may raise anything: shown as the env's)
                raise as_users(err, f"the env {self.config.env}")  # noqa: B904  (its cause: the env's error)
            next_obs = encoder(self.raw)
            done = np.logical_or(terminated, truncated)
            buffers.rewards[t], buffers.terminated[t], buffers.truncated[t] = reward, terminated, truncated
            episode_return += reward
            episode_length += 1
            if "game_over" in info:  # the env counts whole games itself (Atari: every life, the raw score)
                finished_returns.extend(info["game_return"][info["game_over"]])
                finished_lengths.extend(info["game_length"][info["game_over"]])
            if self.recurrent:
                actor.starts = done  # the carry is zeroed before the next step where this episode ended
            if not done.any():
                buffers.next_obs[t] = next_obs
            else:
                buffers.truncated[t] &= ~buffers.terminated[t]  # both at once: terminated wins, no bootstrap
                buffers.next_obs[t] = final_observations(venv, encoder, next_obs, done, info)
                if "game_over" not in info:
                    finished_returns.extend(episode_return[done])
                    finished_lengths.extend(episode_length[done])
                episode_return[done], episode_length[done] = 0.0, 0
            obs = next_obs
        self.obs = obs
        return buffers, finished_returns, finished_lengths, illegal

    def _legal_actions(self, t: int) -> np.ndarray:
        masks = self.venv.action_masks(self.raw, sum(self.spec.action_dims))
        check_some_legal(masks, self.spec.action_dims, self.venv.envs[0], t)
        return masks


def check_finite_rollout(rollout: Rollout, update: int) -> None:
    """Stop on a NaN or infinity the environment returned (observations or rewards)."""
    parts = {name.replace("_", " "): getattr(rollout, name) for name in ("obs", "rewards", "next_obs")}
    check_finite(parts, lambda _: f"in update {update}", source="the environment returned ")
