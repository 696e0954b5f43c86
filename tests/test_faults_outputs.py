"""Output faults of ``keytrack track`` and ``keytrack evaluate``, through the real console script:
unwritable outputs refused before any work, prediction folders written whole with a manifest,
and ``evaluate`` refusing a folder whose files disagree with its manifest."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from keytrack.outputs import MANIFEST

KEYTRACK = str(Path(sys.executable).parent / "keytrack")


def _run(*args):
    env = {**os.environ, "KEYTRACK_DEBUG": ""}
    return subprocess.run([KEYTRACK, *args], capture_output=True, text=True, timeout=300, env=env)


def _refused(out, prog, *needles):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"keytrack {prog}: error: "), out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in last, (needle, last)
    return last


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two synthetic videos as a PoseTrack18 root (annotations/val), tracked once with OKS."""
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("faults")
    write_posetrack18(
        generate_dataset(2, seed=3, config=SynthConfig(frames_per_video=(5, 6))), root / "annotations" / "val"
    )
    return root


def _track(data, output, *extra):
    return _run(
        "track", "--scorer", "oks", "--data", str(data), "--split", "val", "--out", str(output), *extra
    )


def _read_only_dir() -> Path | None:
    """A folder nobody, root included, can create files in (/sys here), or None."""
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(probe)
    return None


def test_track_refuses_an_unwritable_output_before_tracking(data, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    out = _track(data, a_file)
    _refused(out, "track", f"{a_file}: exists and is not a folder")
    assert "input:" not in out.stdout and a_file.read_text() == "keep me"  # nothing read, nothing written

    out = _track(data, a_file / "sub" / "pred")
    _refused(out, "track", f"{a_file / 'sub' / 'pred'}: cannot write", f"{a_file} is a file, not a folder")
    assert "input:" not in out.stdout

    read_only = _read_only_dir()
    if read_only is None:
        pytest.skip("no folder here that refuses writes to this user")
    out = _track(data, read_only / "keytrack_pred")
    _refused(out, "track", f"{read_only / 'keytrack_pred'}: cannot write", f"{read_only} is not writable")
    assert "input:" not in out.stdout


def test_evaluate_refuses_an_unwritable_json_before_scoring(data, tmp_path):
    gt = str(data / "annotations" / "val")
    out = _run("evaluate", "--gt", gt, "--pred", gt, "--json", str(tmp_path))
    _refused(out, "evaluate", f"{tmp_path}: is a folder; --json must name a file")
    assert "ground truth:" not in out.stdout

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = _run("evaluate", "--gt", gt, "--pred", gt, "--json", str(a_file / "r.json"))
    _refused(out, "evaluate", f"{a_file / 'r.json'}: cannot write", f"{a_file} is a file, not a folder")
    assert "ground truth:" not in out.stdout

    read_only = _read_only_dir()
    if read_only is None:
        pytest.skip("no folder here that refuses writes to this user")
    out = _run("evaluate", "--gt", gt, "--pred", gt, "--json", str(read_only / "r.json"))
    _refused(out, "evaluate", f"{read_only / 'r.json'}: cannot write", f"{read_only} is not writable")
    assert "ground truth:" not in out.stdout


def test_track_writes_the_folder_whole_with_a_manifest_and_replaces_it_only_with_overwrite(data, tmp_path):
    pred = tmp_path / "pred"
    out = _track(data, pred)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]  # no temporary sibling left
    manifest = json.loads((pred / MANIFEST).read_text())
    written = sorted(p.name for p in pred.iterdir() if p.name != MANIFEST)
    assert len(written) == 2 and all(n.endswith(".json") for n in written)
    assert manifest["files"] == {n: hashlib.sha256((pred / n).read_bytes()).hexdigest() for n in written}
    assert manifest["command"][:2] == ["keytrack", "track"] and "--overwrite" not in manifest["command"]
    assert manifest["settings"]["scorer"] == "oks" and manifest["settings"]["delta"] == 4
    assert manifest["checkpoint"] is None
    assert manifest["input"]["files"] == 2 and len(manifest["input"]["sha256"]) == 64

    # A folder holding results is refused without --overwrite, before any work, and left as it was.
    (pred / "notes.txt").write_text("mine")
    out = _track(data, pred)
    _refused(out, "track", f"{pred}: already holds results; pass --overwrite")
    assert "input:" not in out.stdout and (pred / "notes.txt").exists()

    # A failing run with --overwrite leaves the old folder as it was.
    bad = tmp_path / "bad"
    (bad / "annotations" / "val").mkdir(parents=True)
    (bad / "annotations" / "val" / "000001.json").write_text("{not json")
    out = _run(
        "track",
        "--scorer",
        "oks",
        "--data",
        str(bad),
        "--split",
        "val",
        "--out",
        str(pred),
        "--overwrite",
    )
    assert out.returncode == 2 and (pred / "notes.txt").exists(), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "pred"]

    # --overwrite replaces the whole folder: the stray file is gone, the predictions are the same.
    out = _track(data, pred, "--overwrite")
    assert out.returncode == 0, out.stderr
    assert not (pred / "notes.txt").exists()
    assert json.loads((pred / MANIFEST).read_text())["files"] == manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "pred"]

    # An empty existing folder needs no --overwrite.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _track(data, empty).returncode == 0 and (empty / MANIFEST).exists()


def test_evaluate_refuses_a_folder_that_disagrees_with_its_manifest(data, tmp_path):
    gt = str(data / "annotations" / "val")
    pred = tmp_path / "pred"
    assert _track(data, pred).returncode == 0
    result = tmp_path / "r.json"
    out = _run("evaluate", "--gt", gt, "--pred", str(pred), "--no-ap", "--json", str(result))
    assert out.returncode == 0, out.stderr
    assert "agree with" in out.stdout and result.exists()

    names = sorted(p.name for p in pred.iterdir() if p.name != MANIFEST)
    first = pred / names[0]
    content = first.read_bytes()

    (pred / "extra.json").write_bytes(content)  # a file added
    out = _run("evaluate", "--gt", gt, "--pred", str(pred), "--no-ap")
    _refused(out, "evaluate", f"{pred}: the files disagree with its {MANIFEST}: added extra.json")
    (pred / "extra.json").unlink()

    first.unlink()  # a file missing
    out = _run("evaluate", "--gt", gt, "--pred", str(pred), "--no-ap")
    _refused(out, "evaluate", f"missing {names[0]}")

    doc = json.loads(content)  # a file changed
    doc["annotations"][0]["track_id"] = 99
    first.write_text(json.dumps(doc))
    out = _run("evaluate", "--gt", gt, "--pred", str(pred), "--no-ap")
    _refused(out, "evaluate", f"changed {names[0]}")
    assert "ground truth:" not in out.stdout

    # Without a manifest (someone else's predictions) the folder is scored as it is.
    (pred / MANIFEST).unlink()
    out = _run("evaluate", "--gt", gt, "--pred", str(pred), "--no-ap")
    assert out.returncode == 0, out.stderr
    assert "MOTA" in out.stdout and "agree with" not in out.stdout
