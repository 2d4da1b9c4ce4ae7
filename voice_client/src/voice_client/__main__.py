"""``python -m voice_client`` is the ``voice-client`` command."""

import sys

from voice_client.cli import main

sys.exit(main())
