"""`python -m govtui`."""

import sys

from govtui.cli import main

# Guarded: worker processes (security.signing.verify_many) import this module again.
if __name__ == "__main__":
    sys.exit(main())
