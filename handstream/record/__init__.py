"""Recording a live session (``handstream serve --record DIR``) and its poses as a table.

:mod:`handstream.record.process`: the recorder process that ``serve`` starts beside the engine (frames from
every capture on a socket of its own, the poses from the pose socket; the folder's layout is
:mod:`handstream.capture.recorder`'s).
"""

from handstream.record.process import recorder_main

__all__ = ["recorder_main"]
