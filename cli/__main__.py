"""`python -m cli`: the same as the `dicom-export` console script."""

import sys

from .main import main

sys.exit(main())
