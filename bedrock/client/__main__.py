"""`python -m bedrock.client "What is 25 * 4?"`: see `bedrock/client/cli.py`."""

import sys

from bedrock.client.cli import main

sys.exit(main())
