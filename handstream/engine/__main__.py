"""``python -m handstream.engine`` reads its arguments as one JSON object on stdin (started by ``handstream serve``)."""

import json
import sys

from handstream.engine.process import engine_main

engine_main(json.loads(sys.stdin.readline()))
