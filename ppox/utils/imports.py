"""Code that a user names as 'package.module:attribute' (an env class, a reward function, ...), imported the
one way: the current folder on the import path, as ``python -m`` would find a module there, and a one-line
ConfigError naming the option when the module is missing, fails to import, lacks the attribute, or the
attribute is not callable."""

from __future__ import annotations

import importlib
import os
import re
import sys
from types import ModuleType
from typing import Any

from ppox.errors import ConfigError

ATTRIBUTE_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")  # package.module:attribute


def with_current_folder() -> None:
    """Put the current folder on the import path (last: it never hides an installed package), unless it
    is there already (``python -m`` and ``python -c`` start with '', the current folder)."""
    folder = os.getcwd()
    if folder not in sys.path and "" not in sys.path:
        sys.path.append(folder)


def import_user_module(name: str, what: str, spec: str | None = None) -> ModuleType:
    """The module ``name`` (its code runs), found from the current folder too; ConfigError naming ``what``
    (the option, e.g. '--reward') and ``spec`` (what the user wrote) when it cannot be imported."""
    spec = name if spec is None else spec
    with_current_folder()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            raise ConfigError(
                f"{what} {spec}: cannot import it: no module named {err.name!r} in the current folder "
                f"({os.getcwd()}) or on the Python path"
            ) from None
        raise ConfigError(f"{what} {spec}: cannot import it: {name!r} imports {err.name!r}, which is missing") from None
    except (Exception, SystemExit) as err:  # noqa: BLE001  (the module's own code may raise anything)
        reason = (str(err).splitlines() or [""])[0][:200]
        raise ConfigError(f"{what} {spec}: cannot import it ({type(err).__name__}: {reason})") from err


def import_attribute(spec: str, what: str, need_callable: bool = True) -> Any:
    """The attribute named by ``spec`` = 'package.module:attribute', its module imported from the current
    folder or the Python path. ``what`` names the option in errors (e.g. '--reward'); with ``need_callable``,
    an attribute that is not a function or class is refused.

    Raises:
        ConfigError: ``spec`` is of another form, the module cannot be imported, it has no such attribute,
            or the attribute is not callable.
    """
    if not isinstance(spec, str) or not ATTRIBUTE_SPEC.match(spec):
        form = "module:function" if need_callable else "module:attribute"
        raise ConfigError(f"{what} {spec}: write it {form} (a module that Python can import)")
    module_name, _, attribute = spec.partition(":")
    module = import_user_module(module_name, what, spec)
    if not hasattr(module, attribute):
        where = getattr(module, "__file__", None) or module_name
        raise ConfigError(f"{what} {spec}: module {module_name!r} ({where}) has no attribute {attribute!r}")
    target = getattr(module, attribute)
    if need_callable and not callable(target):
        raise ConfigError(f"{what} {spec}: {attribute!r} is a {type(target).__name__}, not a function")
    return target
