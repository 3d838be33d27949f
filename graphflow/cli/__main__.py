"""``python -m graphflow.cli``: the same as the ``graphflow`` console script."""

import sys

from graphflow.cli import main

sys.exit(main())
