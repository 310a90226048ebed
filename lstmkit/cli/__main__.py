"""`python -m lstmkit.cli ...`: the `lstmkit` command."""

import sys

from lstmkit.cli.main import main

sys.exit(main())
