"""Run ``crm-ml`` as ``python -m crm_ml.cli``."""

import sys

from crm_ml.cli import main

sys.exit(main())
