"""Shared pytest fixtures and markers.

* ``shared_data`` fixture: the folder of real data that is never committed (``../shared/data`` next to
  the repository, or ``$HANDSTREAM_SHARED_DATA``); tests that use it are skipped, with the reason, when
  it is absent.
* ``@pytest.mark.needs_shared_data``: the same skip for tests that do not take the fixture.
* ``@pytest.mark.needs_cuda``: skipped unless torch sees a CUDA GPU and handstream._cuda is built.
* ``mediapipe_lite`` fixture: MediaPipe's lite hand landmark network (``../shared/models``, never committed)
  imported into a folder of the session (no parity check); skipped with the reason without it or tflite2onnx.
* Tests never write to the user's cache: ``HANDSTREAM_CACHE`` points to a folder of the session (the
  synthetic loops ``serve`` renders, the training cache); processes the tests start inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HANDSTREAM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
_NO_SHARED_DATA = (
    f"shared data not found at {SHARED_DATA} (set HANDSTREAM_SHARED_DATA to the folder with real/ and rigs/)"
)


SHARED_MODELS = Path(os.environ.get("HANDSTREAM_SHARED_MODELS", REPO_ROOT.parent / "shared" / "models"))
MEDIAPIPE_LITE = SHARED_MODELS / "hand_landmark_lite.tflite"


def have_shared_data() -> bool:
    """True when the shared data folder exists."""
    return SHARED_DATA.is_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared data folder; skips the test when it is absent."""
    if not have_shared_data():
        pytest.skip(_NO_SHARED_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def mediapipe_lite(tmp_path_factory) -> Path:
    """The ``.onnx`` of MediaPipe's lite landmark network imported once per session (module docstring)."""
    if not MEDIAPIPE_LITE.is_file():
        pytest.skip(f"{MEDIAPIPE_LITE} not found (MediaPipe's networks live in ../shared/models, never in the repo)")
    pytest.importorskip("tflite2onnx", reason="tflite2onnx is not installed (pip install -e '.[import]')")
    from handstream.models.importer import import_mediapipe

    out = tmp_path_factory.mktemp("mediapipe-lite")
    paths = import_mediapipe(MEDIAPIPE_LITE, out, name="mp-lite", check_parity=False, log=lambda s: None)
    return next(p for p in paths if p.suffix == ".onnx")


def cuda_skip_reason() -> str | None:
    """Why CUDA tests cannot run here, or None when they can (imports torch only when asked)."""
    from handstream.ops import _native

    if _native.cuda() is None:
        return "handstream._cuda not built (no nvcc when the package was installed)"
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install -e '.[train]')"
    if not torch.cuda.is_available() or not _native.cuda_available():
        return "no CUDA GPU on this machine"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_shared_data") is not None and not have_shared_data():
        pytest.skip(_NO_SHARED_DATA)
    if item.get_closest_marker("needs_cuda") is not None:
        reason = cuda_skip_reason()
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    old = os.environ.get("HANDSTREAM_CACHE")
    os.environ["HANDSTREAM_CACHE"] = str(tmp_path_factory.mktemp("handstream-cache"))
    yield
    if old is None:
        os.environ.pop("HANDSTREAM_CACHE", None)
    else:
        os.environ["HANDSTREAM_CACHE"] = old


@pytest.fixture(scope="session")
def random_model(tmp_path_factory) -> Path:
    """A randomly initialised HandNet exported to ONNX with its manifest (the real export path), for
    plumbing tests that must not depend on a trained model. Its outputs are meaningless but real."""
    pytest.importorskip("torch")
    import torch

    from handstream.export import export_onnx
    from handstream.models.network import HandNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.onnx"
    export_onnx(HandNet(), path, name="random-init")
    return path


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
