"""``handstream eval --images``: crop models on real images with 2D labels (``../shared/data/real/images2d``).

MediaPipe's network is imported from ``../shared/models`` (never committed); the tests that need it or the shared
images skip with the reason when they are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handstream.capture.images2d import read_annotations
from handstream.errors import HandstreamError
from tests.cli_run import assert_one_line_error, run_cli
from tests.conftest import REPO_ROOT, SHARED_DATA

IMAGES = SHARED_DATA / "real" / "images2d"


@pytest.fixture(scope="module")
def images() -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} not found (the real labelled images live in ../shared/data)")
    return IMAGES


def test_bad_annotation_files_get_one_line(tmp_path):
    with pytest.raises(HandstreamError, match="annotation file not found"):
        read_annotations(tmp_path)
    (tmp_path / "annotations_op21.json").write_text("{not json")
    with pytest.raises(HandstreamError, match="not readable JSON"):
        read_annotations(tmp_path)
    bad = {"samples": [{"file": "a.jpg", "width": 4, "height": 4, "hands": [{"side": None, "kpts2d": [[1, 2, 1]]}]}]}
    (tmp_path / "annotations_op21.json").write_text(json.dumps(bad))
    with pytest.raises(HandstreamError, match=r"samples\[0\]: kpts2d: expected 21"):
        read_annotations(tmp_path)
    bad["samples"][0]["hands"][0] = {"side": "middle", "kpts2d": [[1, 2, 1]] * 21}
    (tmp_path / "annotations_op21.json").write_text(json.dumps(bad))
    with pytest.raises(HandstreamError, match="side: expected 'left', 'right' or null"):
        read_annotations(tmp_path)


def test_mediapipe_lite_on_real_images_ideal_and_through_the_engine(mediapipe_lite, images):
    from handstream.eval.images import evaluate_images

    res = evaluate_images(images, mediapipe_lite, threads=1)
    ideal, engine = res["ideal"], res["engine"]
    assert res["kind"] == "landmarks" and ideal["hands"] == engine["hands"] >= 10
    assert ideal["found_rate"] == 1.0
    # FreiHAND's knuckles sit 10-20 px (of 224) from MediaPipe's by definition: ~0.1 of an 85 px hand
    assert ideal["error_median"] < 0.2 and ideal["pck_0.2"] > 0.75, ideal
    assert engine["found_rate"] >= 0.75 and engine["error_median"] < 0.25, engine  # no label used
    assert engine["found"] <= ideal["found"]


def test_the_shipped_crop_model_runs_and_mediapipe_beats_it_on_real_hands(mediapipe_lite, images):
    from handstream.eval.images import evaluate_images
    from handstream.models.defaults import DEFAULT_CROP_MODEL

    ours = evaluate_images(images, DEFAULT_CROP_MODEL, threads=1)
    theirs = evaluate_images(images, mediapipe_lite, threads=1)
    assert ours["kind"] == "heatmap" and np.isfinite(ours["ideal"]["error_mean"])
    assert theirs["ideal"]["error_mean"] < ours["ideal"]["error_mean"]


def test_cli_images_mode(mediapipe_lite, images, tmp_path):
    out = tmp_path / "images.json"
    r = run_cli("eval", "--images", str(images), "--model", str(mediapipe_lite), "--json", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["ideal"]["found"] == data["ideal"]["hands"] and "engine" in data
    assert_one_line_error(run_cli("eval", "--images", str(images), "--data", str(tmp_path)), "--data", "--images")
    assert_one_line_error(run_cli("eval", "--images", str(tmp_path)), "annotations_op21.json")
    engines = REPO_ROOT / "engines" / "handstream-default.onnx"
    assert_one_line_error(run_cli("eval", "--images", str(images), "--model", str(engines)), "perspective")
