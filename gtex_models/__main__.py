"""``python -m gtex_models``: the command-line interface."""

import sys

from gtex_models.interfaces.cli.main import main

sys.exit(main())
