"""Checks on a real PoseTrack18-layout dataset given with ``--data=DIR`` (``make test DATA=DIR``).

Not collected without ``--data``: the default suite uses generated data only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keytrack.config import load_config
from keytrack.io import annotation_files, read_dataset, read_video, write_video_posetrack18


def _splits(root: str) -> list[str]:
    ann = Path(root) / "annotations"
    return sorted(p.name for p in ann.iterdir() if p.is_dir()) if ann.is_dir() else [None]


@pytest.fixture(scope="module")
def split(real_data_root):
    return _splits(real_data_root)[0]


@pytest.fixture(scope="module")
def dataset(real_data_root, split):
    return read_dataset(real_data_root, split=split)


def test_every_split_reads(real_data_root):
    for split in _splits(real_data_root):
        ds = read_dataset(real_data_root, split=split)
        assert ds.videos and ds.num_poses > 0, f"{real_data_root} {split}: {ds.report()}"
        for video in ds.videos:
            assert video.width > 0 and video.height > 0
            for frame in video.frames:
                ids = frame.track_ids[frame.track_ids >= 0]
                assert len(np.unique(ids)) == len(ids)


def test_writer_round_trip_on_first_video(real_data_root, split, tmp_path):
    path = annotation_files(real_data_root, split)[0]
    video = read_video(path)
    again = read_video(write_video_posetrack18(video, tmp_path / path.name))
    assert len(again.frames) == len(video.frames)
    for a, b in zip(video.frames, again.frames):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        np.testing.assert_array_equal(a.track_ids, b.track_ids)


def test_pairs_tokens_and_a_training_step(real_data_root, split, dataset, tmp_path):
    from keytrack.lightning.train import datamodule, train
    from keytrack.settings import training_settings

    cfg = load_config(
        [
            f"data.root={real_data_root}",
            f"data.split={split}",
            f"output_dir={tmp_path}",
            "logging.wandb=false",
            "trainer.fast_dev_run=true",
        ]
    )
    dm = datamodule(training_settings(cfg), dataset)
    dm.setup("fit")
    neg, pos = dm.train_set.class_counts()
    assert neg > 0 and pos > 0
    tokens = dm.train_set.tokens
    assert int(tokens["position"].max()) < 24 * 18 and int(tokens["position"].min()) >= 0
    assert bool(tokens["mask"].any(dim=1).all())
    assert train(cfg, dataset)["global_step"] == 1


def test_ground_truth_scores_perfectly_against_itself(real_data_root, split, dataset):
    from keytrack.evaluation import EvaluationError, evaluate

    if not all(np.isfinite(f.head_boxes).all() for v in dataset.videos for f in v.frames):
        # PoseTrack's evaluation needs a head box on every GT pose: it must say so, by name.
        with pytest.raises(EvaluationError, match="head"):
            evaluate(dataset, dataset)
        return
    result = evaluate(dataset, dataset)
    assert result.total["mota"] == pytest.approx(100.0)
    assert result.total["num_switches"] == 0
