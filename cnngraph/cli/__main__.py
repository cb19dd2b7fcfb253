"""``python -m cnngraph.cli``."""

import sys

from cnngraph.cli import main

sys.exit(main())
