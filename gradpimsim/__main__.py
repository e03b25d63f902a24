"""``python -m gradpimsim``: the same command line as the ``gradpimsim`` script."""

import sys

from gradpimsim.cli import main

sys.exit(main())
