"""gymnax, imported without the plotting libraries that stepping an env never uses.

gymnax's package imports every env module, and the rendering code of a few imports seaborn (and with it
pandas and scipy.stats) and matplotlib.pyplot at the top: a large share of gymnax's import time
(docs/design-notes.md).
Before the first import, ppox puts a stand-in for each of those two in ``sys.modules``; the first attribute
anyone asks of one (gymnax's rendering, ppox's plots, a user's script) imports the real module, which then
takes the stand-in's place.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

DEFERRED_MODULES = ("seaborn", "matplotlib.pyplot")


class DeferredModule(types.ModuleType):
    """Stands for a module not imported yet; any attribute asked of it imports the real one."""

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def import_gymnax() -> types.ModuleType:
    """The gymnax package (importing it starts JAX's backend: under --distributed, initialise first)."""
    if "gymnax" not in sys.modules:
        for name in DEFERRED_MODULES:
            if name not in sys.modules and importlib.util.find_spec(name) is not None:
                sys.modules[name] = DeferredModule(name)
    return importlib.import_module("gymnax")
