"""``python -m handstream.bridges``: arguments as one JSON object on stdin (started by ``handstream serve``)."""

import json
import sys

from handstream.bridges.common import bridge_main

bridge_main(json.loads(sys.stdin.readline()))
