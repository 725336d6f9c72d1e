"""Frame sources: pacing, shared epochs, looping, errors; config files for serve."""

import time

import cv2
import numpy as np
import pytest

from handstream.capture.sources import DeviceSource, ImageFolderSource, SyntheticCameraSource, VideoSource, open_source
from handstream.config import ServeConfig, load_config
from handstream.errors import HandstreamError


def _write_video(path, n=12, size=(64, 48), fps=30.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 20 % 256, np.uint8)
        w.write(img)
    w.release()
    return path


def test_video_playback_fast_then_end(tmp_path):
    v = VideoSource(_write_video(tmp_path / "a.mp4"), "cam_0", realtime=False, epoch_ns=1000)
    frames = []
    while (f := v.read()) is not None:
        frames.append(f)
    assert [f.seq for f in frames] == list(range(12))
    assert [f.t_capture_ns for f in frames] == [1000 + i * v._pace.period_ns for i in range(12)]
    assert all(f.meta == {"clock": "media"} and f.image.shape == (48, 64, 3) for f in frames)


def test_video_loops_and_realtime_pacing(tmp_path):
    v = VideoSource(_write_video(tmp_path / "a.mp4", n=5), "cam_0", fps=100.0, loop=True)
    t0 = time.monotonic()
    seqs = [v.read().seq for _ in range(12)]
    elapsed = time.monotonic() - t0
    assert seqs == list(range(seqs[0], seqs[0] + 12)) or len(set(seqs)) == 12
    assert elapsed >= 0.09  # 12 frames at 100 fps are paced, not read at once


def test_restarted_playback_rejoins_at_the_frame_due_now(tmp_path):
    epoch = time.time_ns() - int(0.1e9)  # the system started 100 ms ago at 100 fps -> frame ~10 is due
    v = VideoSource(_write_video(tmp_path / "a.mp4", n=40), "cam_0", fps=100.0, epoch_ns=epoch)
    f = v.read()
    assert 9 <= f.seq <= 13
    assert abs(f.t_capture_ns - (epoch + f.seq * 10_000_000)) == 0


def test_synthetic_cameras_in_separate_sources_show_the_same_instant():
    epoch = time.time_ns()
    a = SyntheticCameraSource("stereo", 0, seed=4, epoch_ns=epoch)
    b = SyntheticCameraSource("stereo", 1, seed=4, epoch_ns=epoch)
    period = a._pace.period_ns
    for src in (a, b):  # frame n of any camera is stamped epoch + n / fps (frames may be skipped under load)
        f = src.read()
        assert f.t_capture_ns == epoch + f.seq * period
    for n in (0, 17, 301):  # and shows the same hands in every camera's process
        np.testing.assert_allclose(a.generator.hands(n)[0].joints, b.generator.hands(n)[0].joints)
        np.testing.assert_allclose(a.generator.hands(n)[1].joints, b.generator.hands(n)[1].joints)


def test_image_folder_natural_order(tmp_path):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), i, np.uint8))
    src = ImageFolderSource(tmp_path, "c", realtime=False)
    assert [src.read().image[0, 0] for _ in range(3)] == [1, 2, 10]
    assert src.read() is None


def test_source_errors_name_the_path(tmp_path):
    with pytest.raises(HandstreamError, match="video file not found"):
        VideoSource(tmp_path / "none.mp4", "c")
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(HandstreamError, match="junk.mp4"):
        VideoSource(tmp_path / "junk.mp4", "c")
    with pytest.raises(HandstreamError, match="no images"):
        ImageFolderSource(tmp_path, "c")
    with pytest.raises(HandstreamError, match="/dev/video99"):
        DeviceSource("/dev/video99", "c")
    with pytest.raises(HandstreamError, match="rig preset"):
        open_source({"kind": "synthetic", "camera": "x"}, preset=None)


def test_config_file_round_trip_and_errors(tmp_path):
    p = tmp_path / "serve.toml"
    p.write_text(
        '[rig]\ncalibration = "calib.toml"\nunit_scale = 0.04\n'
        '[[sources]]\nkind = "video"\npath = "cam0.mp4"\n[[sources]]\nkind = "device"\ndevice = 0\n'
        "[filter]\nenabled = false\n"
    )
    cfg = load_config(p)
    assert cfg.resolve(cfg.rig.calibration) == str(tmp_path / "calib.toml")
    assert cfg.sources[1].device == "0" and cfg.filter.enabled is False
    assert ServeConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    for text, message in [
        ('[rig]\npreset = "stereo"\ncalibration = "x"\n', "exactly one"),
        ('[rig]\npreset = "stereo"\n[engine]\nmin_views = "2"\n', "engine.min_views: expected an integer"),
        ('[rig]\npreset = "stereo"\n[enigne]\n', "unknown key enigne"),
        ('[rig]\npreset = "stereo"\n[[sources]]\nkind = "webcam"\n', "sources\\[0\\].kind"),
        ("[rig\n", "not valid TOML"),
    ]:
        p.write_text(text)
        with pytest.raises(HandstreamError, match=message) as info:
            load_config(p)
        assert str(p) in str(info.value) and "\n" not in str(info.value)
