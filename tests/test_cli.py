"""The `keytrack` command line: every subcommand is registered and documents itself."""

import subprocess
import sys

import pytest

from keytrack.cli import COMMANDS, all_commands, build_parser, command, main, plugin_commands

#: The commands that live outside the library, registered as entry points (setup.cfg).
PLUGINS = {"train": "keytrack.lightning.train", "ablate": "keytrack.ablations.runner"}


def test_top_level_help_lists_every_command_without_importing_any(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in [*COMMANDS, *PLUGINS]:
        assert name in out
    assert "train a matching network" in out  # a plug-in's HELP, read from its source
    # In a fresh process: listing the commands imports none of their modules, nor torch.
    probe = (
        "import sys\nfrom keytrack.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
        "    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning') "
        "or m.split('.')[:2] in (['keytrack', 'lightning'], ['keytrack', 'ablations'], "
        "['keytrack', 'datamodules'])))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_commands_outside_the_library_are_entry_point_plugins():
    found = plugin_commands()
    assert {name: found[name][0] for name in PLUGINS} == PLUGINS
    assert not set(PLUGINS) & set(COMMANDS)  # the library names no outside package
    assert command("train").train.__module__ == "keytrack.lightning.train"
    with pytest.raises(LookupError, match="no keytrack command 'nope'"):
        command("nope")


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser({name: all_commands()[name]}).parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert f"keytrack {name}" in capsys.readouterr().out


# -- bad input through the real console script: one line on stderr, status 2 -------------------------

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from keytrack.errors import CheckpointError, InputError, run_command  # noqa: E402

KEYTRACK = str(Path(sys.executable).parent / "keytrack")


def _run(*args, env=None, cwd=None):
    environment = {**os.environ, "KEYTRACK_DEBUG": "", **(env or {})}
    return subprocess.run([*args], capture_output=True, text=True, timeout=300, env=environment, cwd=cwd)


def _clean_failure(out, prefix, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{prefix}: error: "), out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[-1], (needle, out.stderr)


@pytest.fixture(scope="module")
def nan_folder(tmp_path_factory):
    """Two synthetic videos written as PoseTrack18 JSON, one keypoint of one pose made NaN."""
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("nan")
    paths = write_posetrack18(
        generate_dataset(2, seed=4, config=SynthConfig(frames_per_video=(5, 6))), root / "annotations" / "val"
    )
    data = json.loads(Path(paths[0]).read_text())
    data["annotations"][1]["keypoints"][:3] = [float("nan"), 10.0, 1]
    Path(paths[0]).write_text(json.dumps(data))
    return root


def test_bad_annotation_is_one_line_naming_file_frame_and_field(nan_folder, tmp_path):
    out = _run(
        KEYTRACK,
        "track",
        "--scorer",
        "oks",
        "--data",
        str(nan_folder),
        "--split",
        "val",
        "--out",
        str(tmp_path / "o"),
    )
    _clean_failure(out, "keytrack track", ".json", "frame", "field 'annotations[1].keypoints'")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing half-written
    for debug in ({"args": ["--debug"]}, {"env": {"KEYTRACK_DEBUG": "1"}}):
        out = _run(
            KEYTRACK,
            *debug.get("args", []),
            "track",
            "--scorer",
            "oks",
            "--data",
            str(nan_folder),
            "--split",
            "val",
            "--out",
            str(tmp_path / "o"),
            env=debug.get("env"),
        )
        assert out.returncode == 1 and "Traceback" in out.stderr and "DataError" in out.stderr


def test_missing_and_unreadable_checkpoints(nan_folder, tmp_path):
    out = _run(
        KEYTRACK,
        "track",
        "--checkpoint",
        str(tmp_path / "missing.ckpt"),
        "--data",
        str(nan_folder),
        "--out",
        str(tmp_path / "o"),
    )
    _clean_failure(out, "keytrack track", "missing.ckpt: no such checkpoint")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    out = _run(KEYTRACK, "diagnose", "--checkpoint", str(junk), "--data", str(nan_folder))
    _clean_failure(out, "keytrack diagnose", "junk.ckpt: not a readable torch checkpoint")


def test_config_and_tokenizer_errors(tmp_path):
    _clean_failure(_run(KEYTRACK, "train", "experiment=nope"), "keytrack train", "experiment 'nope'")
    _clean_failure(
        _run(KEYTRACK, "train", "--print-config", "model.layerz=2"),
        "keytrack train",
        "unknown key 'model.layerz'",
    )
    _clean_failure(  # a value Lightning would refuse only once the run's folder exists
        _run(KEYTRACK, "train", "--print-config", "trainer.max_epochs=-5"),
        "keytrack train",
        "trainer.max_epochs: must be >= -1, got -5",
    )
    _clean_failure(
        _run(KEYTRACK, "train", "--print-config", "experiment=gcn", "model.layers=2"),
        "keytrack train",
        "experiments/model/gcn.yaml",
    )
    out = _run(
        KEYTRACK,
        "train",
        "experiment=quick",
        "tokens.grid=[0,18]",
        f"output_dir={tmp_path}",
        "logging.wandb=false",
        "trainer.fast_dev_run=true",
    )
    _clean_failure(out, "keytrack train", "TokenConfig.grid")


def test_unreadable_video_and_missing_data_folder_of_an_ablation(tmp_path):
    _clean_failure(
        _run(KEYTRACK, "track-video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "v")),
        "keytrack track-video",
        "missing.mp4",
    )
    out = _run(
        KEYTRACK,
        "ablate",
        "threshold",
        "--data",
        str(tmp_path / "nowhere"),
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    _clean_failure(out, "keytrack ablate", "nowhere")
    out = _run(
        KEYTRACK, "ablate", "threshold", "axes.delta=[0]", cwd=str(Path(__file__).resolve().parents[1])
    )
    _clean_failure(out, "keytrack ablate", "threshold.yaml: axes.delta: [0] are not integers >= 1")


def test_run_command_keeps_the_traceback_of_a_bug(capsys):
    def bug():
        raise RuntimeError("a bug, not bad input")

    with pytest.raises(RuntimeError):
        run_command("keytrack x", bug)

    def bad():
        raise CheckpointError("x.ckpt: no such checkpoint")

    assert run_command("keytrack x", bad) == 2
    assert capsys.readouterr().err == "keytrack x: error: x.ckpt: no such checkpoint\n"
    assert issubclass(CheckpointError, InputError) and issubclass(InputError, ValueError)

    def missing():
        open("/nonexistent/file.json")

    assert run_command("keytrack x", missing) == 2
    assert capsys.readouterr().err == "keytrack x: error: /nonexistent/file.json: no such file or directory\n"

    def file_in_the_way():
        open(__file__ + "/table.md", "w")

    assert run_command("keytrack x", file_in_the_way) == 2
    assert (
        capsys.readouterr().err
        == f"keytrack x: error: {__file__}/table.md: not a folder (a file is in the way)\n"
    )


def test_help_shows_percent_signs_once(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "(MOTA, %IDSW, AP)" in out and "%%" not in out


# -- default outputs: under runs/, never the committed results/ ------------------------------------


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_no_command_writes_the_committed_results_folder_by_default(name):
    actions = build_parser({name: all_commands()[name]})._subparsers._group_actions[0].choices[name]._actions
    for action in actions:
        assert not str(action.default or "").startswith("results"), (name, action.dest, action.default)


def test_ablations_sweeps_and_their_data_variants_default_to_runs(tmp_path):
    from keytrack.ablations.options import RunOptions, add_options
    from keytrack.ablations.profile import Profile

    assert Profile().results_dir("threshold").as_posix() == "runs/ablations/threshold"
    assert Profile().results_dir("sweep_quick").as_posix() == "runs/sweeps/quick"
    data = Profile(tmp_path / "bonn", eval_split="test")
    assert data.results_dir("tracker_comparison").as_posix() == "runs/ablations/tracker_comparison/bonn-test"
    assert data.results_dir("threshold", root="results") == Path("results/threshold/bonn-test")  # --out
    parser = argparse.ArgumentParser()
    add_options(parser, RunOptions, "threshold")
    assert parser.parse_args([]).out is None and "runs/ablations/threshold" in parser.format_help()


# -- one spelling per concept: --data, --out, --stride; the former ones warn and do the same ---------


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """Two short synthetic videos written as PoseTrack18 JSON."""
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("clean")
    write_posetrack18(
        generate_dataset(2, seed=5, config=SynthConfig(frames_per_video=(6, 8))), root / "annotations" / "val"
    )
    return root


def test_former_spellings_warn_and_give_the_same_result(clean_folder, tmp_path, capsys):
    common = ["track", "--scorer", "oks", "--split", "val"]
    new = [*common, "--data", str(clean_folder), "--out", str(tmp_path / "new"), "--stride", "2"]
    old = [*common, "--input", str(clean_folder), "--output", str(tmp_path / "old"), "--frame-stride=2"]
    assert main(new) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(old) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert warnings == [
        "keytrack track: warning: --input is deprecated, use --data",
        "keytrack track: warning: --output is deprecated, use --out",
        "keytrack track: warning: --frame-stride is deprecated, use --stride",
    ]
    written = sorted(p.name for p in (tmp_path / "new").glob("*.json"))
    assert written and written == sorted(p.name for p in (tmp_path / "old").glob("*.json"))
    for name in written:
        assert json.loads((tmp_path / "new" / name).read_text()) == json.loads(
            (tmp_path / "old" / name).read_text()
        )
    # The former spellings are hidden from --help and still satisfy a required option.
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    shown = capsys.readouterr().out
    assert (
        "--data" in shown and "--stride" in shown and "--input" not in shown and "--frame-stride" not in shown
    )
    with pytest.raises(SystemExit) as exit_:
        main(["diagnose", "--scorer", "oks"])
    assert exit_.value.code == 2 and "the following arguments are required: --data" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_every_command_spells_the_shared_options_alike(name):
    """No command offers a concept's former spelling (--input, --output, --frame-stride) in --help."""
    parser = build_parser({name: all_commands()[name]})._subparsers._group_actions[0].choices[name]
    flags = {s for a in parser._actions for s in a.option_strings}
    assert not flags & {"--input", "--output", "--frame-stride"}, (name, flags)


# -- bad input in every command: `keytrack <cmd>: error: <what>` on stderr, status 2 ----------------

#: command -> (arguments, what the error line names); ``{missing}`` is a path that does not exist,
#: ``{out}`` a fresh output folder. None of them trains or reads more than a file.
BAD_INPUT = {
    "synth": (["--out", "{out}", "--set", "nope=1"], "--set"),
    "render": (["--out", "{out}", "--format", "nope"], "--format"),
    "data-stats": (["--data", "{missing}"], "{missing}"),
    "bench-tokenize": (["--data", "{missing}"], "{missing}"),
    "track": (["--scorer", "oks", "--data", "{missing}", "--out", "{out}"], "{missing}"),
    "perturb": (["--data", "{missing}"], "{missing}"),
    "learning-curve": (["{missing}", "--out", "{out}"], "{missing}"),
    "diagnose": (["--scorer", "oks", "--data", "{missing}", "--out", "{out}"], "{missing}"),
    "evaluate": (["--gt", "{missing}", "--pred", "{missing}"], "{missing}"),
    "bench": (["--data", "{missing}", "--out", "{out}"], "{missing}"),
    "cost": (["--experiments", "nope", "--out", "{out}"], "could not count nope"),
    "convert-checkpoint": (["{missing}", "{out}"], "{missing}"),
    "export-weights": (["{missing}", "{out}"], "{missing}"),
    "track-video": (["{missing}", "--out", "{out}"], "{missing}"),
    "train": (["experiment=nope"], "experiment 'nope'"),
    "ablate": (["threshold", "--data", "{missing}", "--out", "{out}"], "{missing}"),
}


def test_every_command_is_covered_by_the_bad_input_test():
    assert set(BAD_INPUT) == set(all_commands())


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_is_an_error_line_and_status_2(name, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KEYTRACK_DEBUG", raising=False)
    args, needle = BAD_INPUT[name]
    paths = {"missing": str(tmp_path / "missing"), "out": str(tmp_path / "out")}
    try:
        status = main([name, *(a.format(**paths) for a in args)])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, (status, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"keytrack {name}: error: "), err
    assert needle.format(**paths) in last and "Traceback" not in err, err
    assert last.count(f"keytrack {name}") == 1, err  # the command is named once


def test_an_ablation_option_error_names_the_ablation_once(capsys):
    assert main(["ablate", "threshold", "--threads", "0"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "keytrack ablate: error: threshold: threads must be >= 1, got 0"
