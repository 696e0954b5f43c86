"""Rendered synthetic frames (keytrack.synth.render), frame sources and pose crops (keytrack.frames)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from keytrack.frames import (
    BOX_DILATION,
    FrameSource,
    ImageFiles,
    SyntheticFrames,
    crop_boxes,
    crop_regions,
    frame_source,
    pose_crops,
)
from keytrack.io import DataError
from keytrack.poses import Frame, Video
from keytrack.skeleton import JOINTS
from keytrack.synth import SynthConfig, generate_dataset, generate_video
from keytrack.synth.render import SceneRenderer, render_scene
from keytrack.synth.scene import film_video

torch.set_num_threads(1)
SMALL = SynthConfig(frames_per_video=(4, 6), people_per_video=(3, 6), frame_sizes=((320, 180),))
LOOKALIKE = replace(SMALL, people_per_video=(4, 4), lookalike_prob=1.0, group_prob=0.0, crossing_prob=0.0)


# ---- the keypoints stay as they were --------------------------------------------------------------


def test_default_keypoints_are_unchanged_by_the_renderer():
    before = generate_dataset(2, 0).table()
    # digest of generate_dataset(2, 0) keypoints as produced before frames could be rendered
    digest = hashlib.sha256(np.round(before.keypoints, 2).tobytes()).hexdigest()
    assert digest == "c8dd0a991630d7c1fcd045565aa908923f7e7d88e33c5a4acf0df3dfe7b85621"
    for index in range(2):
        video, renderer = render_scene(index, 0, scale=0.1)
        renderer.render(0)
        reference = generate_video(index, 0)
        assert len(video.frames) == len(reference.frames)
        for a, b in zip(video.frames, reference.frames):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            np.testing.assert_array_equal(a.track_ids, b.track_ids)
    after = generate_dataset(2, 0).table()
    np.testing.assert_array_equal(before.keypoints, after.keypoints)


# ---- renderer -------------------------------------------------------------------------------------


def test_renderer_is_deterministic_and_depends_on_the_seed():
    _, a = render_scene(1, 3, SMALL)
    _, b = render_scene(1, 3, SMALL)
    _, c = render_scene(1, 4, SMALL)
    for f in range(a.num_frames):
        np.testing.assert_array_equal(a.render(f), b.render(f))
    image = a.render(0)
    assert image.shape == (180, 320, 3) and image.dtype == np.uint8
    assert not np.array_equal(image, c.render(0))
    _, half = render_scene(1, 3, SMALL, scale=0.5)
    assert half.render(0).shape == (90, 160, 3)


def test_lookalikes_share_colours_and_other_people_differ():
    for index in range(3):
        _, renderer = render_scene(index, 0, LOOKALIKE)
        look, pal = renderer.geometry.look, renderer.palette
        pair = np.flatnonzero(np.bincount(look) == 2)
        assert len(pair) == 1, "the scene holds one look-alike pair"
        a, b = np.flatnonzero(look == pair[0])
        for colours in (pal.shirt, pal.trousers, pal.skin, pal.hair):
            np.testing.assert_array_equal(colours[a], colours[b])
        assert pal.long_sleeves[a] == pal.long_sleeves[b]
        others = [i for i in range(len(look)) if i != b]  # one per distinct look
        shirts = {tuple(pal.shirt[i]) for i in others}
        assert len(shirts) == len(others)


def test_people_are_drawn_where_their_keypoints_are():
    cfg = replace(SMALL, people_per_video=(1, 1), camera_motion_prob=1.0, frame_sizes=((640, 360),))
    hips = [JOINTS.index("left_hip"), JOINTS.index("right_hip")]
    checked = 0
    for index in range(3):
        video, renderer = render_scene(index, 0, cfg)
        for frame in video.frames:
            with_people, background = renderer.render(frame.index), renderer.render(frame.index, people=False)
            for x, y, c in frame.keypoints[:, hips].reshape(-1, 3):
                if c > 0:
                    px = with_people[int(y), int(x)].astype(int)
                    assert np.abs(px - background[int(y), int(x)]).sum() > 0
                    checked += 1
        # far from everyone the frame is the background
        corner = renderer.render(0)[:3, :3]
        kp = video.frames[0].keypoints
        if (kp[kp[..., 2] > 0, 1] > 60).all():
            np.testing.assert_array_equal(corner, renderer.render(0, people=False)[:3, :3])
    assert checked > 10


def test_nearer_people_cover_farther_ones():
    checked = 0
    for index in range(4):
        _, geometry = film_video(index, 0, SMALL)
        renderer = SceneRenderer(geometry, 0, index)
        depth = np.where(geometry.depth[0] > 0.3, geometry.depth[0], np.inf)
        near = int(np.argmin(depth))
        only = np.where(np.arange(geometry.num_people) == near, geometry.depth, 0.0)  # others culled
        alone = SceneRenderer(replace(geometry, depth=only), 0, index).render(0)
        covered = np.any(alone != renderer.render(0, people=False), -1)  # the nearest person's pixels
        # the nearest person is drawn last: on top of everyone
        np.testing.assert_array_equal(renderer.render(0)[covered], alone[covered])
        checked += int(covered.sum())
    assert checked > 1000


def test_camera_pan_moves_the_background():
    _, geometry = film_video(2, 0, replace(SMALL, camera_motion_prob=1.0))
    renderer = SceneRenderer(geometry, 0, 2)
    last = geometry.num_frames - 1
    assert not np.array_equal(renderer.render(0, people=False), renderer.render(last, people=False))
    # a pure pan of 16 pixels shifts the background by 16 pixels
    f = geometry.num_frames
    pan = np.zeros((f, 2))
    pan[1] = (16.0, 0.0)
    still = replace(geometry, pan=pan, zoom=np.ones(f), roll=np.zeros(f))
    r = SceneRenderer(still, 0, 2)
    b0, b1 = r.render(0, people=False), r.render(1, people=False)
    np.testing.assert_array_equal(b1[:, 16:], b0[:, :-16])
    assert not np.array_equal(b1, b0)


# ---- crops ----------------------------------------------------------------------------------------


def test_crop_boxes_of_a_coloured_square_and_outside_the_image():
    image = np.zeros((50, 60, 3), np.uint8)
    image[10:30, 20:40] = (200, 50, 10)
    boxes = np.array(
        [
            [22, 12, 16, 16],  # inside the square
            [-100, -100, 20, 20],  # outside the image
            [np.nan, 0, 5, 5],  # no box
            [10, 10, 20, 20],
        ]
    )  # left half outside the square (black image part)
    crops = crop_boxes(image, boxes, size=(8, 6))
    assert crops.shape == (4, 3, 6, 8) and crops.dtype == torch.uint8
    assert (crops[0] == torch.tensor([200, 50, 10], dtype=torch.uint8)[:, None, None]).all()
    assert (crops[1] == 0).all() and (crops[2] == 0).all()
    assert (crops[3][:, :, :3] == 0).all() and (crops[3][:, :, 5:] == crops[0][:, :, :3]).all()
    # a box over the image edge: the part outside is black
    edge = crop_boxes(torch.full((20, 20, 3), 255, dtype=torch.uint8), np.array([[10.0, 0, 20, 20]]), (4, 4))
    assert (edge[0, :, :, :2] == 255).all() and (edge[0, :, :, 2:] == 0).all()
    with pytest.raises(ValueError, match="image"):
        crop_boxes(np.zeros((5, 5), np.uint8), boxes)
    with pytest.raises(ValueError, match="boxes"):
        crop_boxes(image, np.zeros((2, 3)))


def test_crop_regions_fall_back_to_keypoints_and_dilate():
    kp = np.zeros((2, 15, 3))
    kp[:, :2] = [[10, 20, 1], [30, 60, 1]]
    regions = crop_regions(kp, np.array([[0.0, 0, 100, 40], [np.nan] * 4]))
    np.testing.assert_allclose(regions[0], [50 - 62.5, 20 - 25, 125, 50])
    np.testing.assert_allclose(regions[1], [20 - 12.5, 40 - 25, 20 * BOX_DILATION, 40 * BOX_DILATION])


class _PaintedFrames:
    """Constant image per frame: red = video index + 1, green = frame index + 1."""

    def __init__(self) -> None:
        self.calls = 0

    def image(self, video: Video, frame: Frame) -> np.ndarray:
        self.calls += 1
        image = np.zeros((int(video.height), int(video.width), 3), np.uint8)
        image[..., 0] = int(video.name.split("_")[-1]) + 1
        image[..., 1] = frame.index + 1
        return image


def test_pose_crops_follow_table_order_and_are_cached(tmp_path):
    dataset = generate_dataset(2, 1, SMALL)
    dataset.videos[0].frames.reverse()  # table() sorts frames; crops must too
    f = dataset.videos[1].frames[1]
    f.boxes[:] = np.nan  # box from the keypoints instead
    source = _PaintedFrames()
    assert isinstance(source, FrameSource)
    crops = pose_crops(dataset, source, size=(9, 7))
    table = dataset.table()
    assert crops.shape == (len(table), 3, 7, 9)
    assert source.calls == dataset.num_frames  # one image per frame
    np.testing.assert_array_equal(crops[:, 0, 3, 4].numpy(), table.video + 1)
    np.testing.assert_array_equal(crops[:, 1, 3, 4].numpy(), table.frame + 1)
    # within a frame: the poses' own order, same as cropping frame by frame
    real = SyntheticFrames(1, SMALL, scale=0.5)
    crops = pose_crops(dataset, real, size=(12, 16))
    expected = []
    for video in dataset.videos:
        for frame in sorted(video.frames, key=lambda fr: fr.index):
            if frame.num_poses:
                regions = crop_regions(frame.keypoints, frame.boxes) * 0.5
                expected.append(crop_boxes(real.image(video, frame), regions, (12, 16)))
    torch.testing.assert_close(crops, torch.cat(expected))
    # cache: written once, then read back without touching the source
    first = pose_crops(dataset, real, size=(12, 16), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pose_crops-*.npy"))) == 1
    torch.testing.assert_close(first, crops)

    class Refuse:
        cache_token = real.cache_token

        def image(self, video, frame):
            raise AssertionError("cache not used")

    torch.testing.assert_close(pose_crops(dataset, Refuse(), size=(12, 16), cache_dir=tmp_path), crops)
    pose_crops(dataset, real, size=(16, 12), cache_dir=tmp_path)  # another size: another file
    assert len(list(tmp_path.glob("pose_crops-*.npy"))) == 2
    assert not list(tmp_path.glob(".*tmp"))


# ---- frame sources --------------------------------------------------------------------------------


def test_synthetic_frames_render_the_named_video_and_refuse_others():
    dataset = generate_dataset(2, 5, SMALL)
    source = SyntheticFrames(5, SMALL)
    video = dataset.videos[1]
    _, renderer = render_scene(1, 5, SMALL)
    np.testing.assert_array_equal(source.image(video, video.frames[2]), renderer.render(2))
    with pytest.raises(ValueError, match="not a synthetic scene"):
        source.image(replace(video, name="000342_mpii"), video.frames[0])
    with pytest.raises(ValueError, match="another seed or configuration"):
        SyntheticFrames(5).image(video, video.frames[0])


def test_synthetic_frames_follow_the_file_name_after_subsampling():
    from keytrack.tracking import subsample

    dataset = generate_dataset(1, 5, SMALL)
    source = SyntheticFrames(5, SMALL)
    video = subsample(dataset, 2).videos[0]
    _, renderer = render_scene(0, 5, SMALL)
    assert video.frames[1].index == 1
    np.testing.assert_array_equal(source.image(video, video.frames[1]), renderer.render(2))
    assert not np.array_equal(renderer.render(1), renderer.render(2))


def test_image_files_read_frames_and_name_a_missing_file(tmp_path):
    folder = tmp_path / "images" / "val" / "000001"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "000000.png")
    video = Video(
        "000001",
        [
            Frame(index=0, file_name="images/val/000001/000000.png", image_id=7),
            Frame(index=1, file_name="images/val/000001/000001.jpg", image_id=8),
        ],
        16,
        12,
        source="annotations/val/000001.json",
    )
    source = ImageFiles(tmp_path)
    np.testing.assert_array_equal(source.image(video, video.frames[0]), pixels)
    with pytest.raises(DataError) as err:
        source.image(video, video.frames[1])
    message = str(err.value)
    assert "images/val/000001/000001.jpg" in message and "file_name" in message
    assert err.value.file == "annotations/val/000001.json" and err.value.field == "images[].file_name"
    (folder / "000001.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="unreadable"):
        source.image(video, video.frames[1])


def test_frame_source_follows_the_data_config(tmp_path):
    data = OmegaConf.create({"root": None, "synthetic": {"videos": 2, "seed": 3}})
    source = frame_source(data)
    assert isinstance(source, SyntheticFrames) and source.seed == 3
    data.root = str(tmp_path)
    source = frame_source(data)
    assert isinstance(source, ImageFiles) and source.root == tmp_path


# ---- command line ---------------------------------------------------------------------------------


def test_render_command_writes_stills_and_videos(tmp_path, capsys):
    from keytrack.cli import main

    small = ["--set", "frames_per_video=[3,3]", "--set", "frame_sizes=[[160,90]]"]
    out = ["render", "--out", str(tmp_path)]
    assert main([*out, "--videos", "2", "--format", "png", "--skeletons", *small]) == 0
    still = np.asarray(Image.open(tmp_path / "synth_000001.png"))
    assert still.shape == (90, 160, 3)
    assert main(["render", "--out", str(tmp_path), "--format", "gif", "--scale", "0.5", *small]) == 0
    with Image.open(tmp_path / "synth_000000.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (80, 45)
    assert main(["render", "--out", str(tmp_path), "--format", "mp4", *small]) == 0
    assert (tmp_path / "synth_000000.mp4").stat().st_size > 0
    assert "rendered 3 frames" in capsys.readouterr().out
