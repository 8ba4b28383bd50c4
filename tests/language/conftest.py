import pytest

from ppox.language import randomwalks as rw
from ppox.language.hf import save


@pytest.fixture(scope="session")
def walker(tmp_path_factory):
    """A tiny GPT-2 pretrained on random walks of ``rw.make_graph(seed=0)`` (600 steps), saved as a model folder:
    one per test worker, for test_ppo and test_loss_variants (about 20 CPU s to make)."""
    model, loss = rw.pretrain(rw.make_graph(seed=0), steps=600, seed=0)
    assert loss < 1.3  # uniform over 3 out-edges is ln 3 = 1.10
    folder = tmp_path_factory.mktemp("walker")
    save(folder, model)
    return folder
