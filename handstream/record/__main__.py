"""``python -m handstream.record`` reads its arguments as one JSON object on stdin (started by ``handstream
serve --record``)."""

import json
import sys

from handstream.record.process import recorder_main

recorder_main(json.loads(sys.stdin.readline()))
