"""Bad input gives a DataError naming file, frame and field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keytrack.io import DataError, read_dataset, read_video


def kp(n=17, x=5.0):
    return [x, 7.0, 1.0] * n


def good_doc():
    return {
        "images": [
            {"id": 11, "frame_id": 11, "file_name": "images/v/000000.jpg", "width": 4, "height": 3},
            {"id": 12, "frame_id": 12, "file_name": "images/v/000001.jpg", "width": 4, "height": 3},
        ],
        "annotations": [
            {"image_id": 11, "track_id": 0, "keypoints": kp()},
            {"image_id": 12, "track_id": 0, "keypoints": kp()},
            {"image_id": 12, "track_id": 1, "keypoints": kp()},
        ],
    }


def write(tmp_path, doc, name="vid.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_good_document_reads(tmp_path):
    assert read_video(write(tmp_path, good_doc())).num_poses == 3


def test_data_error_is_a_value_error_with_its_parts():
    err = DataError("a/b.json", "went wrong", frame="image 3 (x.jpg, frame 0)", field="annotations[1].bbox")
    assert isinstance(err, ValueError)
    assert (err.file, err.frame, err.field, err.reason) == (
        "a/b.json",
        "image 3 (x.jpg, frame 0)",
        "annotations[1].bbox",
        "went wrong",
    )
    assert str(err) == "a/b.json: image 3 (x.jpg, frame 0): field 'annotations[1].bbox': went wrong"


def test_malformed_json_names_line_and_column(tmp_path):
    text = json.dumps(good_doc(), indent=1).replace('"track_id": 1', '"track_id": 1,,')
    line = text[: text.index(",,")].count("\n") + 1
    with pytest.raises(DataError, match=rf"vid\.json: malformed JSON at line {line}, column \d+"):
        read_video(write(tmp_path, text))


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda d: d.pop("annotations"), r"vid\.json: field 'annotations': missing required field"),
        (
            lambda d: d["images"][1].pop("id"),
            r"images\[1\] \(images/v/000001\.jpg\): field 'images\[1\]\.id': missing",
        ),
        (lambda d: d["annotations"][2].pop("image_id"), r"field 'annotations\[2\]\.image_id': missing"),
    ],
)
def test_missing_required_field(tmp_path, edit, pattern):
    doc = good_doc()
    edit(doc)
    with pytest.raises(DataError, match=pattern):
        read_video(write(tmp_path, doc))


def test_wrong_keypoint_count(tmp_path):
    doc = good_doc()
    doc["annotations"][2]["keypoints"] = kp(16)
    with pytest.raises(
        DataError,
        match=r"image 12 \(images/v/000001\.jpg, frame 1\): "
        r"field 'annotations\[2\]\.keypoints': 48 values, expected 51",
    ):
        read_video(write(tmp_path, doc))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_coordinates(tmp_path, value):
    doc = good_doc()
    doc["annotations"][1]["keypoints"][4] = value  # json.dumps writes NaN / Infinity
    with pytest.raises(DataError, match=r"frame 1\): field 'annotations\[1\]\.keypoints': NaN or infinite"):
        read_video(write(tmp_path, doc))
    doc = good_doc()
    doc["annotations"][0]["bbox"] = [0, 0, value, 1]
    with pytest.raises(DataError, match=r"frame 0\): field 'annotations\[0\]\.bbox'"):
        read_video(write(tmp_path, doc))


def test_non_numeric_keypoint(tmp_path):
    doc = good_doc()
    doc["annotations"][1]["keypoints"][0] = "five"
    with pytest.raises(DataError, match=r"field 'annotations\[1\]\.keypoints': not a list of numbers"):
        read_video(write(tmp_path, doc))


def test_repeated_track_id_in_one_frame(tmp_path):
    doc = good_doc()
    doc["annotations"][2]["track_id"] = 0
    with pytest.raises(
        DataError,
        match=r"image 12 .*frame 1\): field 'annotations\[2\]\.track_id': "
        r"track id 0 appears twice",
    ):
        read_video(write(tmp_path, doc))
    doc["annotations"][1]["track_id"] = doc["annotations"][2]["track_id"] = -1  # untracked: fine
    assert read_video(write(tmp_path, doc)).frames[1].track_ids.tolist() == [-1, -1]


def test_annotation_for_an_unknown_image(tmp_path):
    doc = good_doc()
    doc["annotations"][1]["image_id"] = 99
    with pytest.raises(DataError, match=r"image 99: field 'annotations\[1\]\.image_id': .*names no entry"):
        read_video(write(tmp_path, doc))


def test_other_bad_values(tmp_path):
    doc = good_doc()
    doc["annotations"][0]["track_id"] = 1.5
    with pytest.raises(DataError, match=r"annotations\[0\]\.track_id"):
        read_video(write(tmp_path, doc))
    doc = good_doc()
    doc["annotations"][0]["scores"] = [0.5] * 3
    with pytest.raises(DataError, match=r"annotations\[0\]\.scores': 3 values, expected 17"):
        read_video(write(tmp_path, doc))
    doc = good_doc()
    doc["images"][0]["ignore_regions_x"] = [[1, 2, 3]]
    with pytest.raises(DataError, match=r"frame 0\): field 'ignore_regions_y'"):
        read_video(write(tmp_path, doc))
    doc = good_doc()
    doc["images"][1]["width"] = 8
    with pytest.raises(DataError, match="width/height"):
        read_video(write(tmp_path, doc))


def test_unknown_format_and_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"vid\.json: neither PoseTrack18 .* nor PoseTrack17"):
        read_video(write(tmp_path, {"videos": []}))
    with pytest.raises(DataError, match="no such file or folder"):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .json or .mat annotation files"):
        read_dataset(tmp_path / "empty")


def test_errors_name_the_file_among_many(tmp_path):
    write(tmp_path, good_doc(), "a.json")
    bad = good_doc()
    bad["annotations"][0]["keypoints"] = kp(17, x=np.nan)
    write(tmp_path, bad, "b.json")
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)
    assert info.value.file.endswith("b.json") and info.value.field == "annotations[0].keypoints"
    assert info.value.frame == "image 11 (images/v/000000.jpg, frame 0)"
