"""`python -m cli`: the same as the `dicom-export` console script."""

import sys

from cli.main import main

sys.exit(main())
