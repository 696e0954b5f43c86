"""PoseTrack evaluation (paper §4.1–4.2) on hand-computable scenes, quirks of poseval included."""

from __future__ import annotations

import json
import math
from argparse import Namespace

import numpy as np
import pytest

from keytrack.evaluation import (
    POSEVAL_JOINTS,
    EvaluationError,
    evaluate,
)
from keytrack.evaluation import cli as eval_cli
from keytrack.evaluation.ap import compute_rpc, voc_ap
from keytrack.evaluation.protocol import FramePoses, match_frame, points_in_polygons
from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import JOINTS, NUM_JOINTS

HEAD = [0.0, 0.0, 30.0, 40.0]  # diagonal 50 -> head size 0.6 * 50 = 30 -> PCKh radius 15 px
A, B = (100.0, 100.0), (400.0, 100.0)  # two people far apart (300 px >> 15 px)
J = len(POSEVAL_JOINTS)


def pose(centre, drop=(), offset=(0.0, 0.0), score=1.0) -> np.ndarray:
    """A 15-joint pose (keytrack order) spread around ``centre``; ``drop`` lists absent joints."""
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, 0] = centre[0] + 3.0 * np.arange(NUM_JOINTS) + offset[0]
    kp[:, 1] = centre[1] + 5.0 * np.arange(NUM_JOINTS) + offset[1]
    kp[:, 2] = score
    for name in drop:
        kp[JOINTS.index(name)] = 0.0
    return kp


def frame(index: int, poses: list[np.ndarray], ids: list[int], **kwargs) -> Frame:
    kp = np.stack(poses) if poses else np.zeros((0, NUM_JOINTS, 3))
    return Frame.from_poses(
        index, kp, track_ids=np.array(ids, dtype=np.int64), head_boxes=np.tile(HEAD, (len(kp), 1)), **kwargs
    )


def dataset(frames: list[Frame], name: str = "v1") -> Dataset:
    return Dataset([Video(name, frames, 960.0, 540.0, source=f"{name}.json")])


def two_people_gt(n: int = 4) -> Dataset:
    return dataset([frame(i, [pose(A), pose(B)], [1, 2]) for i in range(n)])


def all_equal(values, expected) -> bool:
    return np.allclose(np.asarray(values, dtype=float), expected, equal_nan=True, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Whole pipeline on small scenes
# ---------------------------------------------------------------------------------------------


def test_perfect_prediction_scores_100_everywhere():
    gt = two_people_gt()
    pred = dataset([frame(i, [pose(A), pose(B)], [7, 3]) for i in range(4)])
    r = evaluate(gt, pred)
    assert all_equal(r["ap"], 100.0) and r.total["ap"] == 100.0
    assert all_equal(r["mota"], 100.0) and r.total["mota"] == 100.0
    assert all_equal(r["idsw"], 0.0) and all_equal(r["num_switches"], 0)
    assert all_equal(r["motp"], 100.0) and all_equal(r["precision"], 100.0)
    assert all_equal(r["recall"], 100.0)
    # poseval leaves the last scored frame of every video out of the MOT accumulators
    assert r.num_frames == 4 and r.num_mot_frames == 3
    assert all_equal(r["num_objects"], 6) and all_equal(r["num_gt_joints"], 8)
    assert r.columns("mota") == {
        c: 100.0 for c in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")
    }


def test_swapped_identities_count_two_switches_per_joint():
    gt = two_people_gt()
    pred = dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 2 else [20, 10]) for i in range(4)])
    r = evaluate(gt, pred)
    assert all_equal(r["num_switches"], 2) and r.total["num_switches"] == 2 * J
    assert all_equal(r["num_misses"], 0) and all_equal(r["num_false_positives"], 0)
    assert all_equal(r["mota"], 100 * (1 - 2 / 6))
    assert all_equal(r["idsw"], 100 * 2 / 6) and math.isclose(r.total["idsw"], 100 / 3)
    assert all_equal(r["ap"], 100.0)  # AP ignores identities


def test_per_video_counts_add_up_to_the_totals():
    # one video with a swap (2 switches per joint), one tracked cleanly: the switches are the first's
    gt, pred = (
        two_people_gt(),
        dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 2 else [20, 10]) for i in range(4)]),
    )
    clean = dataset([frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)], name="v2")
    r = evaluate(Dataset([*gt.videos, *clean.videos]), Dataset([*pred.videos, *clean.videos]))
    assert r.per_video["v1"]["num_switches"] == 2 * J and r.per_video["v2"]["num_switches"] == 0
    for key in ("num_switches", "num_objects", "num_misses", "num_false_positives"):
        assert sum(v[key] for v in r.per_video.values()) == r.total[key]
    assert r.to_dict()["per_video"] == r.per_video


def test_swap_in_the_last_frame_is_not_counted():
    gt = two_people_gt()
    pred = dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 3 else [20, 10]) for i in range(4)])
    r = evaluate(gt, pred)
    assert all_equal(r["num_switches"], 0) and r.total["mota"] == 100.0


def test_missed_joint_is_a_miss_for_that_joint_only():
    gt = two_people_gt()
    frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    frames[1] = frame(1, [pose(A, drop=["left_wrist"]), pose(B)], [1, 2])
    r = evaluate(gt, dataset(frames))
    lw = POSEVAL_JOINTS.index("left_wrist")
    expected_miss = np.zeros(J)
    expected_miss[lw] = 1
    assert all_equal(r["num_misses"], expected_miss)
    assert r.joint("mota", "left_wrist") == pytest.approx(100 * (1 - 1 / 6))
    assert r.joint("recall", "left_wrist") == pytest.approx(100 * 5 / 6)
    assert r.joint("ap", "left_wrist") == pytest.approx(100 * 7 / 8)  # 7 of 8 GT wrists found
    assert r.joint("ap", "right_wrist") == 100.0
    assert r.columns("mota")["Wri"] == pytest.approx((100 + 100 * (1 - 1 / 6)) / 2)
    assert r.total["mota"] == pytest.approx((14 * 100 + 100 * (1 - 1 / 6)) / 15)


@pytest.mark.parametrize("fp_score, ap", [(0.5, 100.0), (2.0, 100 * 8 / 9)])
def test_false_positive_pose(fp_score, ap):
    gt = two_people_gt()
    frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    frames[0] = frame(0, [pose(A), pose(B), pose((700.0, 300.0), score=fp_score)], [1, 2, 3])
    r = evaluate(gt, dataset(frames))
    assert all_equal(r["num_false_positives"], 1) and all_equal(r["num_misses"], 0)
    assert all_equal(r["mota"], 100 * (1 - 1 / 6))
    assert all_equal(r["precision"], 100 * 6 / 7)
    # ranked below every true positive the false positive costs no AP; ranked first, it drops
    # precision to k / (k + 1) at every recall step k / 8, whose envelope is 8 / 9
    assert all_equal(r["ap"], ap)
    assert all_equal(r["ap_precision"], 100 * 8 / 9)


def test_ignore_region_removes_points_on_both_sides():
    around_b = np.array([[380.0, 80.0], [480.0, 80.0], [480.0, 200.0], [380.0, 200.0]])
    gt_frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    gt_frames[1] = frame(1, [pose(A), pose(B)], [1, 2], ignore_regions=[around_b])
    pred_frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    # inside the region: B is predicted badly, plus a stray pose; both must disappear
    pred_frames[1] = frame(1, [pose(A), pose(B, offset=(20.0, 0.0)), pose((390.0, 85.0))], [1, 2, 3])
    r = evaluate(dataset(gt_frames), dataset(pred_frames))
    # B's joints in frame 1 are removed from the GT: 4 + 4 - 1 = 7 GT poses
    assert all_equal(r["num_gt_joints"], 7)
    assert all_equal(r["num_objects"], 5)
    assert all_equal(r["num_misses"], 0) and all_equal(r["num_false_positives"], 0)
    assert r.total["mota"] == 100.0 and r.total["ap"] == 100.0


def test_ignore_region_keeps_points_outside_and_on_its_border():
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    pts = np.array([[5.0, 5.0], [10.0, 5.0], [0.0, 0.0], [5.0, 10.0], [11.0, 5.0], [9.999, 0.001]])
    assert points_in_polygons(pts, [square]).tolist() == [True, False, False, False, False, True]
    triangle = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert points_in_polygons(np.array([[2.0, 2.0], [6.0, 6.0], [5.0, 5.0]]), [triangle]).tolist() == [
        True,
        False,
        False,
    ]
    assert not points_in_polygons(pts, [np.zeros((0, 2))]).any()


def test_empty_prediction_frame_counts_one_miss_and_one_false_positive():
    gt = two_people_gt()
    frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    frames[1] = frame(1, [], [])
    r = evaluate(gt, dataset(frames))
    # poseval feeds a frame without predictions to every joint as one unmatched GT object and
    # one unmatched hypothesis (id 0), whatever the number of GT people there
    assert all_equal(r["num_objects"], 2 + 1 + 2)
    assert all_equal(r["num_misses"], 1) and all_equal(r["num_false_positives"], 1)
    assert all_equal(r["mota"], 100 * (1 - 2 / 5))
    assert all_equal(r["ap"], 100 * 6 / 8)  # AP counts the GT joints properly


def test_prediction_without_keypoints_is_not_an_empty_frame():
    gt = two_people_gt()
    frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    frames[1] = frame(1, [pose(A, score=0.0)], [1])  # a pose, but no keypoint present
    r = evaluate(gt, dataset(frames))
    assert all_equal(r["num_objects"], 6)
    assert all_equal(r["num_misses"], 2) and all_equal(r["num_false_positives"], 0)


def test_frames_without_gt_people_are_not_scored():
    gt_frames = [frame(i, [pose(A)], [1]) for i in range(4)]
    gt_frames[2] = frame(2, [], [], is_labeled=True)
    pred_frames = [frame(i, [pose(A)], [1]) for i in range(4)]
    pred_frames[2] = frame(2, [pose(A), pose(B)], [1, 2])  # nothing to compare with: ignored
    r = evaluate(dataset(gt_frames), dataset(pred_frames))
    assert r.num_frames == 3 and r.num_mot_frames == 2
    assert r.total["mota"] == 100.0 and r.total["ap"] == 100.0


def test_joint_never_annotated_is_nan_and_left_out_of_totals():
    gt = dataset([frame(i, [pose(A, drop=["nose"])], [1]) for i in range(3)])
    pred = dataset([frame(i, [pose(A, drop=["nose"])], [1]) for i in range(3)])
    r = evaluate(gt, pred)
    assert math.isnan(r.joint("mota", "nose")) and math.isnan(r.joint("idsw", "nose"))
    assert r.joint("ap", "nose") == 0.0  # no predicted nose: poseval's AP stays 0
    assert math.isnan(r.columns("mota")["Head"])  # plain mean over head_top, neck, nose
    assert r.total["mota"] == 100.0  # the total skips NaN joints
    assert r.total["ap"] == pytest.approx(100 * 14 / 15)
    pred_nose = dataset([frame(i, [pose(A)], [1]) for i in range(3)])
    r2 = evaluate(gt, pred_nose)
    assert math.isnan(r2.joint("ap", "nose")) and r2.total["ap"] == 100.0
    assert r2.joint("num_false_positives", "nose") == 2 and r2.joint("precision", "nose") == 0.0


def test_motp_is_poseval_with_motmetrics_raw_events():
    gt = dataset([frame(i, [pose(A)], [1]) for i in range(3)])
    pred = dataset([frame(i, [pose(A, offset=(3.0, 0.0))], [1]) for i in range(3)])
    r = evaluate(gt, pred)
    # distance 3 px / head size 30 = 0.1 per joint and frame, 2 MOT frames; motmetrics 1.4 logs it
    # as a RAW and a MATCH event, and poseval sums both
    assert all_equal(r["sum_match_distance"], 0.2)
    assert all_equal(r["sum_distance"], 0.4)
    assert all_equal(r["motp"], 100 * (1 - 0.4 / 2))


# ---------------------------------------------------------------------------------------------
# Pieces: matching threshold, greedy assignment, precision/recall and AP
# ---------------------------------------------------------------------------------------------


def _poses(kps: list[np.ndarray], ids=None) -> FramePoses:
    f = frame(0, kps, ids if ids is not None else list(range(len(kps))))
    return FramePoses.from_frame(f, Video("v", [f], 1.0, 1.0), "test")


def test_pckh_threshold_is_half_a_head_size_inclusive():
    gt = _poses([pose(A)])
    on = match_frame(gt, _poses([pose(A, offset=(9.0, 12.0))]))  # 15 px: 0.5 head sizes
    off = match_frame(gt, _poses([pose(A, offset=(9.0, 12.001))]))
    assert on.match.all() and np.allclose(on.dist, 0.5)
    assert not off.match.any()


def test_greedy_assignment_keeps_the_best_prediction_per_gt():
    gt = _poses([pose(A)])
    half = pose(A, offset=(40.0, 0.0))
    half[:8, 0] -= 40.0  # 8 of 15 joints on target
    m = match_frame(gt, _poses([half, pose(A)]))
    assert m.pred_to_gt.tolist() == [-1, 0]
    assert m.labels[0].sum() == 0 and m.labels[1].all()  # the loser's good joints are FPs too


def test_precision_recall_and_voc_ap_by_hand():
    precision, recall, order = compute_rpc(np.array([0.7, 0.9, 0.8]), np.array([1, 1, 0]), 2)
    assert order.tolist() == [1, 2, 0]
    assert np.allclose(precision, [1, 0.5, 2 / 3]) and np.allclose(recall, [0.5, 0.5, 1])
    assert voc_ap(recall, precision) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert voc_ap(np.array([0.25]), np.array([1.0])) == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def test_duplicate_track_id_in_a_frame_is_refused():
    frames = [frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)]
    frames[2] = frame(2, [pose(A), pose(B)], [5, 5], file_name="images/v1/000002.jpg")
    with pytest.raises(EvaluationError, match=r"'v1'.*frame 2.*000002\.jpg.*track ids \[5\]"):
        evaluate(two_people_gt(), dataset(frames))


def test_prediction_with_other_frames_is_refused():
    with pytest.raises(EvaluationError, match=r"'v1'.*3 frames.*has 4"):
        evaluate(two_people_gt(), dataset([frame(i, [pose(A)], [1]) for i in range(3)]))
    shifted = dataset([frame(i + 1, [pose(A)], [1]) for i in range(4)])
    with pytest.raises(EvaluationError, match=r"frame 1: does not match ground-truth video 'v1'.*frame 0"):
        evaluate(two_people_gt(), shifted)
    with pytest.raises(EvaluationError, match=r"no prediction.*\['v1'\]"):
        evaluate(two_people_gt(), dataset([frame(i, [pose(A)], [1]) for i in range(4)], "v2"))


def test_untracked_prediction_needs_compute_mot_false():
    pred = dataset([frame(i, [pose(A), pose(B)], [-1, -1]) for i in range(4)])
    with pytest.raises(EvaluationError, match=r"frame 0.*no track id"):
        evaluate(two_people_gt(), pred)
    r = evaluate(two_people_gt(), pred, compute_mot=False)
    assert r.total["ap"] == 100.0 and "mota" not in r.per_joint


def test_missing_head_box_is_refused():
    gt = two_people_gt()
    gt.videos[0].frames[1].head_boxes[1] = np.nan
    with pytest.raises(EvaluationError, match=r"frame 1.*head_boxes.*pose 1.*--complete-head-boxes"):
        evaluate(gt, two_people_gt())


def test_evaluate_cli_draws_missing_head_boxes_where_asked(monkeypatch, capsys):
    gt = two_people_gt()
    gt.videos[0].frames[1].head_boxes[1] = np.nan
    monkeypatch.setattr(eval_cli, "_read_dataset", lambda path: gt if path == "GT" else two_people_gt())
    args = dict(gt="GT", pred="PRED", json=None, no_ap=False, no_mot=False)
    with pytest.raises(EvaluationError, match="--complete-head-boxes"):
        eval_cli.run(Namespace(**args))
    assert eval_cli.run(Namespace(**args, complete_head_boxes=True)) == 0
    printed = capsys.readouterr().out
    assert "drew 1 missing ground-truth head boxes" in printed and "| MOTA | 100.0 |" in printed
    assert np.isnan(gt.videos[0].frames[1].head_boxes[1]).all()  # the ground truth read is not changed


# ---------------------------------------------------------------------------------------------
# Output: table, JSON, command line
# ---------------------------------------------------------------------------------------------


def test_table_json_and_cli(tmp_path, monkeypatch, capsys):
    gt = two_people_gt()
    pred = dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 2 else [20, 10]) for i in range(4)])
    monkeypatch.setattr(eval_cli, "_read_dataset", lambda path: gt if path == "GT" else pred)
    out = tmp_path / "sub" / "eval.json"
    assert eval_cli.run(Namespace(gt="GT", pred="PRED", json=str(out), no_ap=False, no_mot=False)) == 0
    printed = capsys.readouterr().out
    assert "| Metric | Head | Shou | Elb | Wri | Hip | Knee | Ankl | Total |" in printed
    assert "| MOTA | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 |" in printed
    assert "| %IDSW | 33.3 |" in printed and "| AP | 100.0 |" in printed
    assert "scoring: 1/1 videos (4 frames)\n" in printed  # progress, a line per 10 videos and the last
    data = json.loads(out.read_text())
    assert data["joints"] == list(POSEVAL_JOINTS) and data["poseval_joint_names"][12] == "neck"
    assert data["per_joint"]["num_switches"] == [2] * J
    assert data["total"]["idsw"] == pytest.approx(100 / 3)
    assert data["columns"]["mota"]["Total"] == pytest.approx(100 * 2 / 3)
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_json_writes_nan_as_null(tmp_path):
    gt = dataset([frame(i, [pose(A, drop=["nose"])], [1]) for i in range(3)])
    r = evaluate(gt, gt)
    data = json.loads(r.write_json(tmp_path / "r.json").read_text())
    assert data["per_joint"]["mota"][POSEVAL_JOINTS.index("nose")] is None
    assert data["columns"]["mota"]["Head"] is None and data["total"]["mota"] == 100.0


def _posetrack18_file(path, frames: list[list[tuple[int, np.ndarray]]], scores: bool) -> None:
    """A PoseTrack18 file: ``frames[k]`` lists ``(track_id, [15, 3] keytrack-order pose)``."""
    from keytrack.skeleton import FROM_POSETRACK18, POSETRACK18_JOINTS

    images, annotations = [], []
    for k, people in enumerate(frames):
        image_id = 10_000 + k
        images.append(
            {
                "id": image_id,
                "frame_id": image_id,
                "is_labeled": True,
                "file_name": f"images/val/000001_mpii_test/{k:06d}.jpg",
                "width": 960,
                "height": 540,
            }
        )
        for tid, kp in people:
            kp17 = np.zeros((17, 3))
            kp17[FROM_POSETRACK18] = kp
            ann = {
                "id": len(annotations),
                "image_id": image_id,
                "track_id": tid,
                "category_id": 1,
                "keypoints": kp17.ravel().tolist(),
                "bbox_head": HEAD,
            }
            if scores:
                ann["scores"] = kp17[:, 2].tolist()
            annotations.append(ann)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [
                    {"id": 1, "name": "person", "keypoints": list(POSETRACK18_JOINTS), "skeleton": []}
                ],
            }
        )
    )


def test_command_line_on_posetrack18_files(tmp_path, capsys):
    from keytrack.cli import main

    gt = [[(1, pose(A)), (2, pose(B))] for _ in range(4)]
    pred = [[(10, pose(A)), (20, pose(B))] if k < 2 else [(20, pose(A)), (10, pose(B))] for k in range(4)]
    _posetrack18_file(tmp_path / "gt" / "000001_mpii_test.json", gt, scores=False)
    _posetrack18_file(tmp_path / "pred" / "000001_mpii_test.json", pred, scores=True)
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(tmp_path / "gt"),
                "--pred",
                str(tmp_path / "pred"),
                "--json",
                str(tmp_path / "out.json"),
            ]
        )
        == 0
    )
    assert "| MOTA | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 | 66.7 |" in capsys.readouterr().out
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["per_joint"]["num_switches"] == [2] * J and data["total"]["ap"] == 100.0


def test_counts_agree_with_motmetrics_compute():
    import motmetrics as mm

    from keytrack.evaluation.mot import MOT_COUNTS, VideoAccumulators
    from keytrack.evaluation.protocol import prepare_video

    rng = np.random.default_rng(3)
    gt_frames, pred_frames = [], []
    for k in range(6):
        gt_frames.append(frame(k, [pose(A), pose(B), pose((250.0, 100.0))], [1, 2, 3]))
        ids = rng.permutation([5, 6, 7, 8])
        jitter = [pose(c, offset=tuple(rng.normal(0, 8, 2))) for c in (A, B, (250.0, 100.0), A)]
        pred_frames.append(frame(k, jitter, ids.tolist()))
    gt, pred = dataset(gt_frames).videos[0], dataset(pred_frames).videos[0]
    video = VideoAccumulators().run(prepare_video(gt, pred))
    counts = video.counts()
    host = mm.metrics.create()
    assert counts["num_switches"].sum() > 0 and counts["num_false_positives"].sum() > 0
    for j, acc in enumerate(video.accumulators):
        expected = host.compute(acc, metrics=list(MOT_COUNTS), return_dataframe=False, name="acc")
        assert {n: counts[n][j] for n in MOT_COUNTS} == {n: float(expected[n]) for n in MOT_COUNTS}
