"""``python3 -m install`` (from a checkout), ``python -m install link`` / ``unlink``."""

import os
import sys

# Checked before anything else is imported, so an old interpreter gets a sentence instead
# of a SyntaxError from a module it cannot parse.
if sys.version_info < (3, 10):  # noqa: UP036 - the one check that must run on old Pythons
    sys.exit(
        "ocm-cli: Python 3.10 or newer is needed (this is "
        + sys.version.split()[0]
        + "); run the installer with a newer python3"
    )

if not __package__:
    # Run as `python3 path/to/checkout/install`: Python put this folder first on sys.path,
    # where its venv.py would hide the standard library's. Put the checkout there instead.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from install.cli import main  # noqa: E402

sys.exit(main())
