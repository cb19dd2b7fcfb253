"""``python -m cnngraph ...``: the ``cnngraph`` command, as ``mpiexec`` starts it on each rank."""

import sys

from cnngraph.cli import main

sys.exit(main())
