"""``python -m nape.cli``: the ``nape`` command."""

import sys

from . import main

sys.exit(main())
