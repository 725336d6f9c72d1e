"""Read poses WITHOUT the handstream package: pyzmq + msgpack + numpy only.

This is everything a program in another language has to do (see docs/wire-protocol.md):
subscribe to the topic b"pose", read [topic, msgpack header, *raw buffers], check the version,
and view each buffer as the dtype and shape the header declares.

    python examples/raw_subscriber.py [tcp://127.0.0.1:5556]
"""

import sys

import msgpack
import numpy as np
import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556"
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"pose")
sock.connect(endpoint)
while True:
    topic, header, *buffers = sock.recv_multipart()
    if topic != b"pose":
        continue  # e.g. b"poses..." would match the prefix subscription
    h = msgpack.unpackb(header, raw=False)
    if h.get("v") != 1:
        continue  # a protocol version this program does not know
    arrays = [np.frombuffer(b, dtype=d["dtype"]).reshape(d["shape"]) for b, d in zip(buffers, h["buffers"])]
    joints = arrays[0]  # (H, 21, 3) float32 metres; H = len(h["hands"])
    latency_ms = (h["t_send_ns"] - h["t_capture_ns"]) / 1e6
    sides = [hand["side"] for hand in h["hands"]]
    print(h["seq"], f"{latency_ms:.1f} ms", {s: joints[i, 0].round(3).tolist() for i, s in enumerate(sides)})
