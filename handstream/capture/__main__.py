"""``python -m handstream.capture`` reads its arguments as one JSON object on stdin (started by ``handstream
serve``)."""

import json
import sys

from handstream.capture.process import capture_main

capture_main(json.loads(sys.stdin.readline()))
