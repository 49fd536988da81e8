"""``python -m roost module:app``: the same as the ``roost`` command."""

import sys

from roost.cli import main

sys.exit(main())
