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
    with pytest.raises(HandstreamError, match="rendered loop"):
        open_source({"kind": "synthetic", "camera": "left", "render": "cached"}, preset="stereo")


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
        ('[rig]\npreset = "stereo"\n[[sources]]\nrender = "sometimes"\n', "sources\\[0\\].render: expected one of"),
        ('[rig]\npreset = "stereo"\n[[sources]]\nloop_frames = 0\n', "can only be rendered live"),
        ("[rig\n", "not valid TOML"),
    ]:
        p.write_text(text)
        with pytest.raises(HandstreamError, match=message) as info:
            load_config(p)
        assert str(p) in str(info.value) and "\n" not in str(info.value)


# --- the synthetic loop: rendered once, cached, played --------------------------------------------------


def _tiny_preset(views: int = 2):
    from handstream.bench import bench_rig

    return bench_rig(views, (96, 72), base="headset4")  # headset4's fisheye cameras, small images


def test_cached_loop_plays_what_live_rendering_shows_with_shared_timestamps(tmp_path):
    from handstream.capture.material import synthetic_loops

    preset = _tiny_preset(3)
    frames = 6
    # two render processes (the path serve takes for a real loop): the same bytes as rendering here
    folders = synthetic_loops(preset, None, seed=3, frames=frames, root=tmp_path, workers=2)
    assert list(folders) == list(preset.rig.names)
    epoch = time.time_ns()
    spec = {"kind": "synthetic", "seed": 3, "fps": None, "loop_frames": frames}
    cached, live = {}, {}
    for cam in preset.rig.names:  # one capture process per camera, all started with the rig's epoch
        cached[cam] = open_source({**spec, "camera": cam, "render": "cached", "loop_dir": str(folders[cam])},
                                  preset=preset, epoch_ns=epoch)  # fmt: skip
        live[cam] = open_source({**spec, "camera": cam, "render": "live"}, preset=preset, epoch_ns=epoch)
        assert isinstance(live[cam], SyntheticCameraSource) and cached[cam].fps == live[cam].fps == preset.fps
    got: list[tuple[str, object]] = []
    for _ in range(frames + 3):  # 9 frames in a row: the loop wraps while reading
        for cam, src in cached.items():
            got.append((cam, src.read()))
    read: dict[int, dict[str, int]] = {}
    for cam, f in got:
        assert f.t_capture_ns == epoch + f.seq * cached[cam]._pace.period_ns  # the rig's shared clock
        # the pre-rendered frame is the one live rendering makes for that frame index, byte for byte
        np.testing.assert_array_equal(f.image, live[cam].generator.frame(f.seq).images[0])
        read.setdefault(f.seq, {})[cam] = f.t_capture_ns
    every = [seq for seq, cams in read.items() if len(cams) == len(cached)]
    assert every, read
    assert all(len(set(read[seq].values())) == 1 for seq in every)  # frame n of every camera: one instant
    assert len({seq % frames for seq in read}) == frames  # every frame of the loop was played


def test_loop_cache_is_reused_and_damage_is_rendered_again(tmp_path):
    from handstream.capture.material import check_loop, loop_key, synthetic_loops

    preset = _tiny_preset(2)
    calls: list[tuple[int, int]] = []

    def loops():
        calls.clear()
        return synthetic_loops(preset, None, seed=1, frames=4, root=tmp_path,
                               progress=lambda done, total, what: calls.append((done, total)))  # fmt: skip

    first = loops()
    assert calls[0] == (0, 8) and calls[-1] == (8, 8)  # 2 cameras x 4 frames, with progress
    a, b = (first[c] for c in preset.rig.names)
    original = (a / "00002.pgm").read_bytes()
    stamp = (a / "00002.pgm").stat().st_mtime_ns
    assert loops() == first and calls == []  # the second start renders nothing
    assert (a / "00002.pgm").stat().st_mtime_ns == stamp

    (a / "00002.pgm").write_bytes(original[: len(original) // 2])  # a truncated frame
    (b / "manifest.json").write_text("{not json")  # a garbled manifest
    stale = a.with_name(a.name[:-12] + "0123456789ab")  # the same camera's loop by an older renderer
    stale.mkdir()
    partial = a.with_name(a.name + ".partial-999999999")  # an interrupted render of a process that is gone
    partial.mkdir()
    assert check_loop(a, loop_key(preset, preset.rig.names[0], 1, 4)) is not None
    assert loops() == first and calls[-1] == (8, 8)  # both cameras rendered again ...
    assert (a / "00002.pgm").read_bytes() == original  # ... to the same bytes
    assert not stale.exists() and not partial.exists()
    (b / "00003.pgm").unlink()  # a missing frame: only that camera again
    loops()
    assert calls[-1] == (4, 4)


def test_loop_is_seamless_at_the_wrap():
    from handstream.synth.generator import SynthGenerator
    from handstream.synth.rigs import get_preset

    n = 90  # 3 s at 30 fps: 3 to 6 key poses
    for seed in (0, 1):
        gen = SynthGenerator(get_preset("headset4"), seed, sequence_length=None, motion_blur=False, loop_frames=n)
        joints = np.array([[h.joints for h in gen.hands(i)] for i in range(n - 3, 2 * n + 3)])  # across the wrap
        np.testing.assert_allclose(joints[3], joints[n + 3])  # frame n shows frame 0
        step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=(1, 2))  # per frame, m
        accel = np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1).max(axis=(1, 2))
        wrap = 2  # step from frame n-1 to frame n (= 0): like the steps either side (a cut would jump decimetres)
        assert step[wrap] <= 1.5 * max(step[wrap - 1], step[wrap + 1]) + 1e-3, (seed, step[wrap - 1 : wrap + 2])
        assert accel[wrap - 1] <= 1.5 * max(accel[wrap - 2], accel[wrap]) + 1e-3, (seed, accel[wrap - 2 : wrap + 1])
        look = gen.look(0)
        assert look.gain(0.0) == pytest.approx(look.gain(n / gen.preset.fps))  # exposure: no jump either
