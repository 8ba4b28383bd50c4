"""The tracker registry: a tracker named in TRACKERS receives every update of every seed; TensorBoard is one."""

import ppox
from ppox.storage import trackers
from tests.helpers import QUICK

RECEIVED: list[tuple[int, int, tuple[str, ...]]] = []


class Recorder:
    """A tracker for this test: notes (first update, updates in the chunk, metric names) of each write."""

    def __init__(self, config, path, names):
        self.names = names
        RECEIVED.clear()

    def write(self, metrics, first_update, steps_per_second, wall):
        RECEIVED.append((first_update, metrics["episode_return"].shape[1], self.names))
        assert metrics["episode_return"].shape[0] == 2  # seeds

    def close(self):
        RECEIVED.append((-1, 0, ()))


def test_a_registered_tracker_receives_every_update(tmp_path, monkeypatch):
    monkeypatch.setitem(trackers.TRACKERS, "tensorboard", "tests.storage.test_trackers:Recorder")
    config = ppox.Config(env="CartPole-v1", seeds=2, run_dir=str(tmp_path), **QUICK).replace(tensorboard=True)
    ppox.train(config)
    assert RECEIVED[-1] == (-1, 0, ())
    chunks = RECEIVED[:-1]
    assert [first for first, *_ in chunks] == sorted(first for first, *_ in chunks)
    assert sum(n for _, n, _ in chunks) == config.num_updates
    assert "episode_return" in chunks[0][2] and "approx_kl" in chunks[0][2]


def test_no_tracker_without_tensorboard(tmp_path):
    config = ppox.Config(env="CartPole-v1", run_dir=str(tmp_path), **QUICK)
    assert trackers.tracker_names(config) == []
    assert trackers.tracker_names(config.replace(tensorboard=True)) == ["tensorboard"]
    assert trackers.tracker_class("tensorboard").__name__ == "TensorBoardTracker"
