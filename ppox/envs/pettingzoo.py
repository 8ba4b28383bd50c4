"""PettingZoo envs on the host driver: every agent of every game is one row of a vector env (parameter sharing).

A PettingZoo parallel env steps all its agents at once: ``step({agent: action}) -> (obs, rewards,
terminations, truncations, infos)``, each a dict by agent. ``AgentRows`` presents ``num_envs // n_agents``
copies of such a game as one Gymnasium vector env of ``num_envs`` rows, row ``g * n_agents + i`` being agent
``i`` of game ``g``, so one policy (and one value function) acts for every agent: IPPO with parameter sharing.
AEC envs (``module.env()``) go through PettingZoo's own ``aec_to_parallel``.

- Observations: each agent's own, padded with zeros to the longest (1-D boxes); with ``--agent-id`` a one-hot
  agent id after it, so that a shared policy can act differently per agent (as ppox's JaxMARL rows).
- Rewards: each agent's own (a shared team reward is every agent's reward where the env gives it so).
- Ends: a game ends when every agent is terminated or truncated; its rows then end together (each with its own
  terminated / truncated flags), the final observations go to ``info["final_obs"]`` and the game is reset
  (Gymnasium's SAME_STEP autoreset). An agent that leaves while the others play on is refused in one line.
- Action masks: where the env's observations are ``{"observation", "action_mask"}`` (PettingZoo's classic games)
  the mask goes through ppox's mask path.
- MAPPO (``--critic world_state``): each row is the agent's part (observation, id) followed by the world state
  (and the id again), the layout of ppox's JaxMARL rows: the actor reads the first ``actor_obs`` features, the
  critic the rest. The world state is the game's ``state()`` where it declares a ``state_space`` (MPE, pistonball),
  else every agent's padded observation joined (JaxMARL's MAPPO convention); vector observations only.

Ids: ``pettingzoo/MODULE`` names a PettingZoo env module, e.g. ``pettingzoo/mpe2.simple_spread_v3`` or
``pettingzoo/pettingzoo.butterfly.pistonball_v6``; ``MODULE.parallel_env()`` makes one game.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from pettingzoo.utils.conversions import aec_to_parallel
from pettingzoo.utils.env import AECEnv, ParallelEnv

from ppox.errors import ConfigError
from ppox.utils.imports import import_user_module

PREFIX = "pettingzoo/"


def is_pettingzoo_id(env_id: Any) -> bool:
    return isinstance(env_id, str) and env_id.startswith(PREFIX)


def game_factory(env: Any, render_mode: str | None = None) -> Callable[[], Any]:
    """A function making one parallel game, from a ``pettingzoo/MODULE`` id, a parallel or AEC env function;
    ``render_mode`` (ids only) is passed to the module's maker (``"rgb_array"``: ``render()`` returns frames)."""
    if is_pettingzoo_id(env):
        module_name = env[len(PREFIX) :]
        module = import_user_module(module_name, "--env", env)
        make = getattr(module, "parallel_env", None) or getattr(module, "env", None)
        if make is None:
            raise ConfigError(f"--env {env}: the module {module_name} has no parallel_env() (a PettingZoo env module)")
        options = {"render_mode": render_mode} if render_mode else {}
        return lambda: as_parallel(make(**options))
    if callable(env):
        return lambda: as_parallel(env())
    raise ConfigError(f"env: {env!r} is not a PettingZoo id (pettingzoo/MODULE) or a function making a game")


def as_parallel(game: Any) -> Any:
    """The game as a PettingZoo ParallelEnv (an AEC env converted by PettingZoo's aec_to_parallel)."""
    if isinstance(game, AECEnv):
        return aec_to_parallel(game)
    if not isinstance(game, ParallelEnv):
        raise ConfigError(f"env: made a {type(game).__name__}, not a PettingZoo ParallelEnv or AECEnv")
    return game


class WorldState(NamedTuple):
    """Where MAPPO's world state comes from: "state" (the game's ``state()``) or "joint" (observations joined)."""

    kind: str
    size: int


def world_source(game: Any, label: str, flat: bool, masked: bool, joint_size: int) -> WorldState:
    """The world state of a game (``--critic world_state``): its ``state()`` where it declares a ``state_space``,
    else every agent's padded observation joined; refused in one line where a row cannot hold it."""
    if not flat or masked:
        what = "are not vectors" if not flat else "carry action masks"
        raise ConfigError(
            f"--critic world_state: {label}'s observations {what}, and a MAPPO row is a vector (the agent's "
            "observation, then the world state): use --critic local"
        )
    try:
        space = game.state_space
    except (AttributeError, NotImplementedError):
        space = None
    if isinstance(space, spaces.Box):
        return WorldState("state", int(np.prod(space.shape)))
    return WorldState("joint", joint_size)


class RowLayout:
    """How agents' observations and actions become rows: one shared action space, padded observations, ids,
    and with ``critic="world_state"`` the world state after them (MAPPO)."""

    def __init__(self, game: Any, label: str, agent_id: bool = False, critic: str = "local"):
        self.agents = list(game.possible_agents)
        action_spaces = [game.action_space(a) for a in self.agents]
        if any(s != action_spaces[0] for s in action_spaces):
            raise ConfigError(
                f"env {label}: its agents act in different action spaces ({', '.join(map(str, action_spaces))}); "
                "one policy for all agents needs one action space"
            )
        self.action_space = action_spaces[0]
        raw = [game.observation_space(a) for a in self.agents]
        self.masked = isinstance(raw[0], spaces.Dict) and "action_mask" in raw[0].spaces
        inner = [s["observation"] if self.masked else s for s in raw]
        self.flat = all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in inner)
        if not self.flat and any(s.shape != inner[0].shape for s in inner):
            raise ConfigError(f"env {label}: its agents observe different shapes ({[s.shape for s in inner]})")
        if agent_id and not self.flat:
            raise ConfigError(f"--agent-id: {label}'s observations are not vectors; one-hot ids go after vectors only")
        self.with_id = agent_id
        self.size = max(s.shape[0] for s in inner) if self.flat else 0
        self.ids = len(self.agents) if agent_id else 0
        joint = len(self.agents) * self.size
        self.world = world_source(game, label, self.flat, self.masked, joint) if critic == "world_state" else None
        box = self._box(inner)
        self.observation_space = (
            spaces.Dict({"observation": box, "action_mask": raw[0]["action_mask"]}) if self.masked else box
        )

    def _box(self, inner: list) -> spaces.Box:
        if not self.flat:
            return inner[0]
        return spaces.Box(-np.inf, np.inf, (self.width,), np.float32)

    def row(self, index: int, obs: Any) -> Any:
        """Agent ``index``'s observation as its row: padded, with its one-hot id where there is one."""
        inner = obs["observation"] if self.masked else obs
        if self.flat:
            out = np.zeros(self.width, np.float32)
            out[: np.shape(inner)[0]] = inner
            if self.with_id:
                out[self.size + index] = 1.0
            inner = out
        return {"observation": inner, "action_mask": np.asarray(obs["action_mask"])} if self.masked else inner

    def game_rows(self, obs: dict, game: Any) -> list:
        """Every agent's row of one game; with a world state, [observation, id, world state, id] (as JaxMARL's)."""
        rows = [self.row(i, obs[a]) for i, a in enumerate(self.agents)]
        if self.world is None:
            return rows
        joint = self.world.kind == "joint"
        world = np.concatenate([r[: self.size] for r in rows]) if joint else np.ravel(game.state())
        if world.size != self.world.size:
            raise ConfigError(f"env: state() has {world.size} values, its state_space {self.world.size}")
        for i, r in enumerate(rows):
            r[self.actor_obs : self.actor_obs + world.size] = world
            if self.with_id:
                r[self.width - self.ids + i] = 1.0
        return rows

    @property
    def actor_obs(self) -> int:
        """The features the actor reads where a world state follows (observation and id); 0 without one."""
        return self.size + self.ids if self.world else 0

    @property
    def width(self) -> int:
        """A row's length: the longest observation, the one-hot id, then the world state and the id again."""
        return self.size + self.ids + (self.world.size + self.ids if self.world else 0)


class AgentRows(gym.vector.VectorEnv):
    """``num_envs`` rows, ``num_envs // n_agents`` games of a PettingZoo parallel env, SAME_STEP autoreset."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        make_game: Callable[[], Any],
        num_envs: int,
        label: str = "pettingzoo",
        agent_id: bool = False,
        critic: str = "local",
    ):
        first = make_game()
        self.layout = RowLayout(first, label, agent_id, critic)
        self.actor_obs = self.layout.actor_obs  # (> 0: MAPPO, the policy's actor reads these first features)
        self.agents = tuple(str(a) for a in self.layout.agents)  # (a policy trained on the rows acts by agent)
        agents = len(self.layout.agents)
        if num_envs % agents:
            games = max(1, round(num_envs / agents))
            raise ConfigError(
                f"num_envs={num_envs}: every agent of every game is a row, and {label} has {agents} agents: pass "
                f"--num-envs {games * agents} ({games} games), a multiple of {agents}"
            )
        self.games = [first] + [make_game() for _ in range(num_envs // agents - 1)]
        self.envs = self.games  # (the first names the env in messages)
        self.label, self.num_envs = label, num_envs
        self.single_observation_space = self.layout.observation_space
        self.single_action_space = self.layout.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.mask_source: str | None = "obs" if self.layout.masked else None
        self._rows: list[Any] = [None] * num_envs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        for g, game in enumerate(self.games):
            obs, _ = game.reset(seed=None if seed is None else seed + g)
            self._set_game(g, obs)
        return self._stacked(), {}

    def step(self, actions):
        actions = np.asarray(actions)
        n = len(self.layout.agents)
        reward = np.zeros(self.num_envs, np.float64)
        terminated, truncated = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        info: dict = {}
        for g, game in enumerate(self.games):
            chosen = {a: _env_action(actions[g * n + i]) for i, a in enumerate(self.layout.agents)}
            obs, rewards, terms, truncs, _ = game.step(chosen)
            ended = self._game_ended(game, terms, truncs)
            for i, agent in enumerate(self.layout.agents):
                row = g * n + i
                reward[row] = float(rewards.get(agent, 0.0))
                terminated[row], truncated[row] = bool(terms.get(agent)), bool(truncs.get(agent))
            self._set_game(g, obs)
            if ended:
                if not info:
                    info = {
                        "final_obs": np.full(self.num_envs, None, object),
                        "_final_obs": np.zeros(self.num_envs, bool),
                    }
                for i in range(n):
                    info["final_obs"][g * n + i], info["_final_obs"][g * n + i] = self._rows[g * n + i], True
                self._set_game(g, game.reset()[0])
        return self._stacked(), reward, terminated, truncated, info

    def _game_ended(self, game: Any, terms: dict, truncs: dict) -> bool:
        done = {a for a in self.layout.agents if terms.get(a) or truncs.get(a)}
        if done and len(done) < len(self.layout.agents):
            raise ConfigError(
                f"env {self.label}: agents {sorted(done)} left while the others play on; ppox's PettingZoo rows "
                "need every agent until its game ends (IPPO with parameter sharing over whole games)"
            )
        return bool(done) or not game.agents

    def _set_game(self, g: int, obs: dict) -> None:
        n = len(self.layout.agents)
        self._rows[g * n : (g + 1) * n] = self.layout.game_rows(obs, self.games[g])

    def _stacked(self) -> Any:
        if self.layout.masked:
            return {k: np.stack([r[k] for r in self._rows]) for k in ("observation", "action_mask")}
        return np.stack(self._rows)

    def action_masks(self, raw_obs, size: int) -> np.ndarray:
        """Every row's current action mask, bool [num_envs, size], from the observations' action_mask."""
        return np.asarray(raw_obs["action_mask"]).astype(bool).reshape(self.num_envs, size)

    def close(self, **kwargs) -> None:
        for game in self.games:
            game.close()


def _env_action(action: np.ndarray) -> Any:
    return int(action) if np.ndim(action) == 0 and np.issubdtype(np.asarray(action).dtype, np.integer) else action


def make_host_envs(
    env: Any,
    num_envs: int,
    vec: str,
    max_episode_steps: int | None = None,
    hide_obs: tuple = (),
    agent_id: bool = False,
    critic: str = "local",
    render_mode: str | None = None,
):
    """The host driver's rows of a PettingZoo env (the family's host maker; evaluation makes one game's rows, with
    ``render_mode`` for --video); options it cannot honour refused."""
    if vec != "sync":
        raise ConfigError(f"--vec {vec}: PettingZoo games are stepped in this process: leave --vec out")
    if max_episode_steps is not None or hide_obs:
        raise ConfigError(
            "--max-episode-steps and --hide-obs wrap Gymnasium envs; a PettingZoo game sets its own length "
            "(e.g. max_cycles)"
        )
    label = env if isinstance(env, str) else "pettingzoo"
    return AgentRows(game_factory(env, render_mode), num_envs, label, agent_id, critic)


def make_one_env(env: Any, video_folder=None):
    """Single-agent evaluation refuses PettingZoo envs: a PettingZoo run is evaluated on its own env, whole games
    with every agent acting (``ppox.acting.agent_episodes``)."""
    raise ConfigError(
        f"env {env}: a PettingZoo env is evaluated with the run's own policy acting for every agent: evaluate a "
        "PettingZoo run on the env it trained on (leave env out)"
    )
