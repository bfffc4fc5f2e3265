"""``python -m vicreg_edu`` (and ``torchrun -m vicreg_edu train ...``): the ``vicreg-edu`` command."""

import sys

from .cli import main

sys.exit(main())
