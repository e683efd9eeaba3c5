"""``python -m gtex_models``: the command-line interface."""

import sys

from gtex_models.cli import main

sys.exit(main())
