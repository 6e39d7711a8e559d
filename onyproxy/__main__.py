import sys

from onyproxy.cli import main

sys.exit(main())
