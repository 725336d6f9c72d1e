"""Bridges: small subscriber processes that deliver the live poses to the tools people already use.

::

    engine --pose (ZeroMQ)--> bridge process --> websocket  (browsers, game engines: JSON or a binary layout)
                                             --> osc        (creative tools: UDP OSC bundles)
                                             --> lsl        (labs: Lab Streaming Layer, one stream per hand)

Each bridge is a loop over :class:`~handstream.transport.pubsub.PoseSubscriber` that never waits for its consumer
in a way that reaches the engine (ZeroMQ PUB drops for a slow subscriber; each bridge keeps only the newest pose
per consumer). ``handstream bridge KIND`` runs one in the foreground; ``handstream serve --bridge KIND`` starts one
as a supervised child (``python -m handstream.bridges``, arguments as JSON on stdin). The formats and minimal
receivers: docs/use-the-poses.md.
"""

from __future__ import annotations

from handstream.bridges.common import KINDS, check_options, run_bridge

__all__ = ["KINDS", "check_options", "run_bridge"]
