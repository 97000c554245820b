"""`python -m resnet_lab` is the `resnet-lab` command."""

import sys

from .cli import main

sys.exit(main())
