import sys

from chatd.server import main

sys.exit(main())
