import sys

from affectlite.cli import main

sys.exit(main())
