"""gymnax imported without seaborn and pyplot, which still work in full when something uses them."""

import subprocess
import sys

from tests.helpers import ROOT

SCRIPT = r"""
import sys
from ppox.envs.gymnax_import import DeferredModule, import_gymnax
gymnax = import_gymnax()
env, params = gymnax.make("Pong-misc")
assert not {"pandas", "scipy.stats"} & set(sys.modules), sorted(sys.modules)
assert isinstance(sys.modules["seaborn"], DeferredModule)
import seaborn as sns
assert len(sns.color_palette("cubehelix", 3)) == 3
assert not isinstance(sys.modules["seaborn"], DeferredModule) and "pandas" in sys.modules
import seaborn.palettes
from ppox.experiments.plots import pyplot
figure = pyplot().figure()
assert not isinstance(sys.modules["matplotlib.pyplot"], DeferredModule)
import matplotlib
assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
print("ok")
"""


def test_gymnax_imports_without_seaborn_and_its_plots_still_work():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
