"""``handstream view``: the live 3D view in a browser, served by the project on 127.0.0.1.

::

    engine --pose, status.* (ZeroMQ)--> view server --HTTP: the page (static/)--> browser
                                                    --WebSocket /ws: scene, status, poses-->

* :mod:`handstream.view.server`: one port for the page's files and the WebSocket; the ZeroMQ subscriber in its
  own thread; a latest-message slot per page (the websocket bridge's rule: a slow page drops, never queues).
* :mod:`handstream.view.scene`: the cameras' frustums from the calibration, the rig's up, and the joints
  projected into each view for ``--include-2d``, all through the project's camera model.
* ``static/``: the page (HTML, CSS and the project's own JavaScript: Canvas 2D, no library, no network).

The user's guide: docs/use-the-poses.md, "Viewer".
"""

from __future__ import annotations

from handstream.view.scene import load_rig, scene_message
from handstream.view.server import check_view_options, run_view

__all__ = ["check_view_options", "load_rig", "run_view", "scene_message"]
