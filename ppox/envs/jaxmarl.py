"""JaxMARL's multi-agent envs (pip install "ppox[marl]") on the fused driver, agents stacked on the batch axis.

``AgentStack`` presents one JaxMARL env (dicts of per-agent observations, actions, rewards and dones) as a
gymnax-style env whose arrays have a leading agent axis: obs [A, D], reward [A], terminated [A]. The fused
program vmaps it over num_envs copies and folds [num_envs, A] into num_envs * A rows of one batch, so one
network acts for every agent (parameter sharing; IPPO) and the env is stepped once per A rows.

Per row: the agent's own reward (shared or individual, as the env gives it) and its own done. A row is
truncated where the episode reached a step limit: the env's own (``max_steps``, where its state counts ``step``
or ``time``: MPE, SMAX, Overcooked), or --max-episode-steps; it is terminated where the agent is done otherwise.
The env resets when every agent is done (``__all__``) or at --max-episode-steps.

Options (``configured``): ``agent_id`` appends a one-hot agent index to each row's observation;
``critic="world_state"`` (MAPPO) appends the env's world state to each row, after the local part: the actor
reads the first ``actor_obs`` features, the critic the rest (``ppox.agent.networks``). The world state is the
env's ``get_world_state(state)`` where it has one (SMAX), else for MPE the concatenation of every agent's
observation (as JaxMARL's MAPPO baseline builds it); other envs refuse it. Legal-action masks come from
``get_avail_actions`` (SMAX) or ``get_legal_moves`` (Hanabi).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import jax
import jax.numpy as jnp
import jaxmarl
import matplotlib.pyplot as plt
import numpy as np
from flax import struct
from jaxmarl.environments.mpe.mpe_visualizer import MPEVisualizer
from jaxmarl.environments.multi_agent_env import MultiAgentEnv
from jaxmarl.environments.smax import map_name_to_scenario

from ppox.envs.gymnax_import import import_gymnax
from ppox.errors import ConfigError

DEFAULT_STEP_LIMIT = 10_000  # where the env has no max_steps of its own
SMAX_PREFIX = "SMAX-"  # "SMAX-" + a map name: JaxMARL's SMAX against its heuristic enemy (HeuristicEnemySMAX)
CRITICS = ("local", "world_state")


@struct.dataclass
class StackState:
    inner: Any  # the JaxMARL env's state
    time: jax.Array  # steps taken in this episode


@struct.dataclass
class StackParams:
    max_steps_in_episode: int = DEFAULT_STEP_LIMIT


def overrides(env, name: str) -> bool:
    """Whether the env's class defines ``name`` itself (not MultiAgentEnv's NotImplementedError stub)."""
    method = getattr(type(env), name, None)
    return method is not None and method is not getattr(MultiAgentEnv, name, None)


def flat(x) -> jax.Array:
    return jnp.ravel(jnp.asarray(x, jnp.float32))


class AgentStack:
    """A JaxMARL env with its agents stacked on a leading axis (module docstring). ``stacked_agents`` tells the
    fused program to fold that axis into the batch."""

    def __init__(self, env, name: str, agent_id: bool = False, critic: str = "local"):
        self.env, self.name, self.agent_id, self.critic = env, name, agent_id, critic
        self.agents = tuple(env.agents)
        self.stacked_agents = len(self.agents)
        spaces = [env.action_space(a) for a in self.agents]
        if any(type(s).__name__ != "Discrete" for s in spaces) or len({int(s.n) for s in spaces}) != 1:
            raise ConfigError(f"--env {name}: ppox stacks agents with one Discrete action space; this env has {spaces}")
        self.num_actions = int(spaces[0].n)
        self.local_size = max(int(np.prod(env.observation_space(a).shape)) for a in self.agents)
        self.default_params = StackParams()
        self.world = self.world_state_kind()
        if critic == "world_state" and self.world is None:
            raise ConfigError(
                f"--critic world_state: {name} has no world state (JaxMARL's get_world_state, or MPE's joint "
                "observation); use --critic local"
            )
        self.actor_obs = self.local_size + self.stacked_agents * agent_id if critic == "world_state" else 0
        obs, _ = jax.eval_shape(self.reset_env, jax.random.PRNGKey(0), self.default_params)
        self.obs_shape = tuple(obs.shape[1:])

    def configured(self, agent_id: bool, critic: str) -> AgentStack:
        """The same env with these options (a new adapter: the options shape the observation)."""
        return AgentStack(self.env, self.name, agent_id, critic)

    def world_state_kind(self) -> str | None:
        """The world state's source: "env" (get_world_state), "joint" (MPE: every agent's observation), or None."""
        if overrides(self.env, "get_world_state"):
            return "env"
        return "joint" if self.name.startswith("MPE_") else None

    def rows(self, obs: dict, state) -> jax.Array:
        """[A, D] rows of the policy's input: local observation (zero-padded), agent id, world state."""
        local = jnp.stack([jnp.pad(flat(obs[a]), (0, self.local_size - flat(obs[a]).size)) for a in self.agents])
        ids = jnp.eye(self.stacked_agents, dtype=jnp.float32)
        parts = [local, ids] if self.agent_id else [local]
        if self.critic == "world_state":
            world = flat(self.env.get_world_state(state)) if self.world == "env" else jnp.ravel(local)
            parts.append(jnp.broadcast_to(world, (self.stacked_agents, world.size)))
            if self.agent_id:
                parts.append(ids)
        return jnp.concatenate(parts, axis=1)

    def reset_env(self, key, params):
        obs, inner = self.env.reset(key)
        return self.rows(obs, inner), StackState(inner, jnp.zeros((), jnp.int32))

    def reset(self, key, params=None):
        return self.reset_env(key, params)

    def stack(self, values: dict, dtype) -> jax.Array:
        return jnp.stack([jnp.asarray(values[a], dtype) for a in self.agents])

    def step_env(self, key, state: StackState, action, params):
        """(obs [A, D], state, reward [A], terminated [A], truncated [A], game_over [A]) of one step, no reset."""
        actions = {a: action[i] for i, a in enumerate(self.agents)}
        obs, inner, reward, dones, _ = self.env.step_env(key, state.inner, actions)
        time = state.time + 1
        cut = time >= params.max_steps_in_episode  # ppox's --max-episode-steps
        all_done = jnp.asarray(dones["__all__"], bool)
        ended = jnp.logical_or(all_done, cut)
        by_time = jnp.logical_or(cut, jnp.logical_and(all_done, self.env_limit(inner)))
        terminated = jnp.logical_and(self.stack(dones, bool), jnp.logical_not(by_time))
        truncated = jnp.logical_and(jnp.logical_and(ended, by_time), jnp.logical_not(terminated))
        over = jnp.broadcast_to(ended, terminated.shape)
        rewards = self.stack(reward, jnp.float32)
        return self.rows(obs, inner), StackState(inner, time), rewards, terminated, truncated, over

    def env_limit(self, inner) -> jax.Array:
        """Whether the env's own step counter reached its ``max_steps`` (its episode ends by time, not by play)."""
        inner = getattr(inner, "state", inner)  # (SMAX against its heuristic enemy wraps SMAX's state)
        counter = getattr(inner, "step", getattr(inner, "time", None))
        limit = getattr(self.env, "max_steps", None)
        if counter is None or limit is None:
            return jnp.zeros((), bool)
        return jnp.asarray(counter) >= limit

    def autoreset_step(self, keys, state: StackState, action, params):
        """step(keys [2], state, action [A]) -> (obs, state, reward, terminated, truncated, final_obs, game_over):
        a step, then a reset where the episode ended (``game_over``, per agent row)."""
        final_obs, stepped, reward, terminated, truncated, over = self.step_env(keys[0], state, action, params)
        obs_re, state_re = self.reset_env(keys[1], params)
        new_state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(over[0], r, s), state_re, stepped)
        obs = jnp.where(over[0], obs_re, final_obs)
        return obs, new_state, reward, terminated, truncated, final_obs, over

    def check_filmable(self) -> None:
        """A one-line refusal unless ``render_frames`` can draw this env (JaxMARL's MPE envs)."""
        if not self.name.startswith("MPE_"):
            raise ConfigError(
                f"--video: ppox films JaxMARL's MPE envs only (JaxMARL's MPEVisualizer draws them); evaluate "
                f"{self.name} without --video"
            )

    def render_frames(self, states: list) -> list[np.ndarray]:
        """RGB frames [H, W, 3] of an episode's env states (``StackState.inner``), drawn by JaxMARL's own MPE
        visualiser (matplotlib, off-screen); other JaxMARL envs are refused in one line."""
        self.check_filmable()
        with contextlib.redirect_stdout(io.StringIO()):  # (the visualiser prints whether agents talk)
            drawing = MPEVisualizer(self.env, [jax.device_get(s) for s in states])
        frames = []
        try:
            for index in range(len(states)):
                drawing.update(index)
                drawing.fig.canvas.draw()
                frames.append(np.asarray(drawing.fig.canvas.buffer_rgba())[..., :3].copy())
        finally:
            plt.close(drawing.fig)
        return frames

    def is_truncated(self, state: StackState, params):
        return state.time >= params.max_steps_in_episode

    def observation_space(self, params):
        spaces = import_gymnax().environments.spaces
        return spaces.Box(-jnp.inf, jnp.inf, self.obs_shape, jnp.float32)

    def action_space(self, params):
        return import_gymnax().environments.spaces.Discrete(self.num_actions)


class MaskedAgentStack(AgentStack):
    """An AgentStack whose env says its legal actions: ``action_mask(state)`` [A, num_actions]."""

    def action_mask(self, state: StackState):
        if overrides(self.env, "get_avail_actions"):
            avail = self.env.get_avail_actions(state.inner)
        else:
            avail = self.env.get_legal_moves(state.inner)
        return jnp.stack([jnp.asarray(avail[a], bool) for a in self.agents])

    def configured(self, agent_id: bool, critic: str) -> AgentStack:
        return MaskedAgentStack(self.env, self.name, agent_id, critic)


def make_jaxmarl_env(env_id: str):
    """JaxMARL's env of a ppox id: a JaxMARL id, or "SMAX-" + a map name."""
    if env_id.startswith(SMAX_PREFIX):
        try:
            scenario = map_name_to_scenario(env_id.removeprefix(SMAX_PREFIX))
        except (KeyError, ValueError):
            raise ConfigError(f"--env {env_id}: not a SMAX map (SMAX- + a map of JaxMARL's SMAX, e.g. 2s3z)") from None
        return jaxmarl.make("HeuristicEnemySMAX", scenario=scenario)
    if env_id not in jaxmarl.registered_envs:
        raise ConfigError(f"--env {env_id}: not a JaxMARL id (one of jaxmarl.registered_envs, or SMAX- + a map)")
    return jaxmarl.make(env_id)


def make(env_id: str):
    """(env, params) of a JaxMARL id, agents stacked, IPPO's options: the family's fused maker (the run's
    --agent-id and --critic are applied by ``configured``)."""
    env = make_jaxmarl_env(env_id)
    masked = overrides(env, "get_avail_actions") or hasattr(env, "get_legal_moves")
    stack = (MaskedAgentStack if masked else AgentStack)(env, env_id)
    return stack, stack.default_params
