"""A small RLHF task with a known optimum (after trlX's "randomwalks" example, written afresh).

A random directed graph whose nodes are the tokens; node 0 is the goal and the end-of-sequence token.
A tiny GPT-2 is pretrained (teacher-forced cross-entropy) on random walks that start at a random node and
stop at the goal; the prompt is a start node, the completion the walk it continues. The score of a
completion is d*(start) / its length if it is a path along the graph's edges that reaches the goal
(1 for a shortest path), else 0, so the mean score is the fraction of the optimum reached.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ppox.language.config import LMConfig
from ppox.language.hf import LanguageModel
from ppox.language.models import forward, init_params

GOAL = 0


@dataclasses.dataclass(frozen=True)
class Graph:
    edges: tuple[tuple[int, ...], ...]  # out-neighbours of each node
    distance: tuple[int, ...]  # d*(v): fewest edges from v to the goal

    @property
    def nodes(self) -> int:
        return len(self.edges)

    @property
    def pad_id(self) -> int:
        return self.nodes


def distances_to_goal(edges) -> list[int]:
    """Breadth-first search backwards from the goal; -1 where the goal cannot be reached."""
    back: list[list[int]] = [[] for _ in edges]
    for v, outs in enumerate(edges):
        for w in outs:
            back[w].append(v)
    distance, queue = [-1] * len(edges), deque([GOAL])
    distance[GOAL] = 0
    while queue:
        w = queue.popleft()
        for v in back[w]:
            if distance[v] < 0:
                distance[v] = distance[w] + 1
                queue.append(v)
    return distance


def make_graph(nodes: int = 21, degree: int = 3, seed: int = 0, min_farthest: int = 4) -> Graph:
    """A graph with ``degree`` random out-edges per node (the goal has none) from which every node reaches
    the goal and the farthest needs at least ``min_farthest`` steps (drawn again until it does)."""
    rng = np.random.default_rng(seed)
    while True:
        edges = [()] + [
            tuple(int(w) for w in rng.choice([u for u in range(nodes) if u != v], degree, replace=False))
            for v in range(1, nodes)
        ]
        distance = distances_to_goal(edges)
        if min(distance) >= 0 and max(distance) >= min_farthest:
            return Graph(tuple(edges), tuple(distance))


def random_walks(graph: Graph, count: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ids [count, length], mask): walks from uniform start nodes (not the goal) along uniform out-edges,
    stopping at the goal (kept) or after ``length`` nodes; padded on the right."""
    ids = np.full((count, length), graph.pad_id, np.int32)
    for i in range(count):
        v = int(rng.integers(1, graph.nodes))
        for t in range(length):
            ids[i, t] = v
            if v == GOAL:
                break
            v = int(rng.choice(graph.edges[v]))
    return ids, ids != graph.pad_id


def path_scores(graph: Graph, prompts: list, completions: list) -> list[float]:
    """d*(start) / len(completion) for a completion that follows edges to the goal, else 0."""
    scores = []
    for prompt, walk in zip(prompts, completions):
        path = [int(prompt[-1]), *map(int, walk)]
        valid = len(walk) > 0 and path[-1] == GOAL and all(w in graph.edges[v] for v, w in zip(path, path[1:]))
        scores.append(graph.distance[path[0]] / len(walk) if valid else 0.0)
    return scores


def tiny_gpt(graph: Graph, width: int = 64, layers: int = 2, heads: int = 4, positions: int = 16) -> LMConfig:
    return LMConfig(
        family="gpt2",
        model_type="gpt2",
        vocab_size=graph.nodes + 1,
        hidden_size=width,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=width // heads,
        intermediate_size=4 * width,
        max_positions=positions,
        norm_eps=1e-5,
        activation="gelu_new",
        tie_embeddings=True,
    )


def next_token_loss(config: LMConfig, params: dict, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """Teacher-forced cross-entropy -mean log p(x_{t+1} | x_<=t) over the real next tokens."""
    logp = jax.nn.log_softmax(forward(config, params, ids, mask)[:, :-1], axis=-1)
    taken = jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
    target = mask[:, 1:]
    return -(taken * target).sum() / jnp.maximum(target.sum(), 1)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _pretrain_step(config: LMConfig, optimizer, params, opt_state, ids, mask):
    loss, grads = jax.value_and_grad(functools.partial(next_token_loss, config))(params, ids, mask)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def pretrain(
    graph: Graph, steps: int = 1500, batch: int = 64, seed: int = 0, length: int = 11, learning_rate: float = 3e-3
) -> tuple[LanguageModel, float]:
    """(a tiny GPT-2 trained on random walks, its last loss); config.json names the goal as the end token."""
    config, rng = tiny_gpt(graph), np.random.default_rng(seed)
    params = init_params(config, jax.random.PRNGKey(seed))
    optimizer = optax.adam(learning_rate)
    opt_state, loss = optimizer.init(params), jnp.nan
    pool, pool_mask = random_walks(graph, max(20 * batch, 4096), length, rng)
    for _ in range(steps):
        rows = rng.integers(0, len(pool), batch)
        params, opt_state, loss = _pretrain_step(config, optimizer, params, opt_state, pool[rows], pool_mask[rows])
    hf = {"eos_token_id": GOAL, "pad_token_id": graph.pad_id}
    return LanguageModel(config, params, hf), float(loss)


def start_prompts(graph: Graph) -> list[list[int]]:
    """Every node but the goal, as a one-token prompt."""
    return [[v] for v in range(1, graph.nodes)]
