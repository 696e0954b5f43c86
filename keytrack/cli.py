"""The ``keytrack`` command line: one subcommand per module, imported only when used.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int | None``. Bad input
(:mod:`keytrack.errors`) prints ``keytrack <command>: error: <message>`` and exits with status 2;
``--debug`` (anywhere on the line) or ``KEYTRACK_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("keytrack.train", "train a matching network (omegaconf key=value overrides)"),
    "synth": ("keytrack.synth.cli", "write synthetic multi-person scenes as PoseTrack18 JSON"),
    "render": ("keytrack.synth.render_cli", "render synthetic scenes to MP4/GIF/PNG (optionally with skeletons)"),
    "data-stats": ("keytrack.stats", "statistics of synthetic scenes beside a real dataset"),
    "bench-tokenize": ("keytrack.bench_tokenize", "measure tokenized pose pairs per second"),
    "track": ("keytrack.tracking.cli", "track poses online (Pose Entailment, OKS or IoU), write PoseTrack18 JSON"),
    "perturb": ("keytrack.perturb", "predicted poses from ground truth (Figure 4's keypoint sources)"),
    "learning-curve": ("keytrack.learning_curve", "validation ranking metrics of training runs against steps"),
    "diagnose": ("keytrack.diagnose", "rank each pose's candidates as the tracker decides (rank-1, wrong > true, new tracks)"),
    "evaluate": ("keytrack.evaluation.cli", "PoseTrack evaluation (MOTA, %%IDSW, AP), as poseval"),
    "bench": ("keytrack.bench", "the matcher, keytrack train's step and the tracker against the roofline"),
    "cost": ("keytrack.models.cost", "parameters and FLOPs per pose pair of every matcher (Table 6)"),
    "ablate": ("ablations.runner", "run an ablation: a spec of experiments/ablations/ or one that stays code"),
    "track-video": ("keytrack.video.cli", "detect, estimate (TOKS) and track poses in a video, render it"),
}


def build_parser(commands: dict[str, tuple[str, str]] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keytrack", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of bad input too (also KEYTRACK_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from keytrack.errors import debug_requested, run_command

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    # Import only the module of the command asked for (torch imports are slow).
    name = next((a for a in argv if not a.startswith("-")), None)
    commands = {name: COMMANDS[name]} if name in COMMANDS else COMMANDS
    prog = f"keytrack {name}" if name in COMMANDS else "keytrack"
    args = build_parser(commands).parse_args(argv)    # bad arguments: argparse's usage line and status 2
    return run_command(prog, lambda: importlib.import_module(args._module).run(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
