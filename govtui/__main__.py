"""`python -m govtui`."""

import sys

from govtui.cli import main

sys.exit(main())
