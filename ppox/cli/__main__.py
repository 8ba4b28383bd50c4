"""``python -m ppox.cli``: the same as the ``ppox`` program."""

import sys

from ppox.cli import main

sys.exit(main())
