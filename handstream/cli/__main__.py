"""``python -m handstream.cli``: the ``handstream`` command (e.g. ``torchrun ... -m handstream.cli train ...``)."""

import sys

from handstream.cli.app import main

sys.exit(main())
