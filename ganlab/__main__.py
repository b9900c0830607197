"""`python -m ganlab ...`: see ganlab/cli.py."""
import sys

from .cli import main

sys.exit(main())
