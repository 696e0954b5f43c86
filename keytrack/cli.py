"""The ``keytrack`` command line: one subcommand per module, imported only when used.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int | None``. The library's
own commands are :data:`COMMANDS`; installed packages add theirs as entry points of the group
``keytrack.commands`` (``name = package.module``; setup.cfg registers ``keytrack train`` from the
Lightning layer and ``keytrack ablate`` from the ablations), so the library names no package outside
it. A plug-in's one-line help is its module's ``HELP`` string (else its docstring's first line), read
from the source: listing the commands imports none of them. Bad input (:mod:`keytrack.errors`)
prints ``keytrack <command>: error: <message>`` and exits with status 2; ``--debug`` (anywhere on
the line) or ``KEYTRACK_DEBUG=1`` shows the traceback instead.

One spelling per concept, in every command: ``--data`` (the PoseTrack18-layout folder read), ``--out``
(where results go) and ``--stride`` (keep every k-th frame). Former spellings still work
(:func:`renamed_option`: hidden from ``--help``, one warning line on stderr).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from types import ModuleType

#: The entry-point group through which installed packages add commands.
PLUGIN_GROUP = "keytrack.commands"

#: subcommand -> (module, one-line help): the library's own commands
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("keytrack.synth.cli", "write synthetic multi-person scenes as PoseTrack18 JSON"),
    "render": (
        "keytrack.synth.render_cli",
        "render synthetic scenes to MP4/GIF/PNG (optionally with skeletons)",
    ),
    "data-stats": ("keytrack.stats", "statistics of synthetic scenes beside a real dataset"),
    "bench-tokenize": ("keytrack.bench_tokenize", "measure tokenized pose pairs per second"),
    "track": (
        "keytrack.tracking.cli",
        "track poses online (Pose Entailment, OKS or IoU), write PoseTrack18 JSON",
    ),
    "perturb": ("keytrack.perturb", "predicted poses from ground truth (Figure 4's keypoint sources)"),
    "learning-curve": (
        "keytrack.learning_curve",
        "validation ranking metrics of training runs against steps",
    ),
    "diagnose": (
        "keytrack.diagnose",
        "rank each pose's candidates as the tracker decides (rank-1, wrong > true, new tracks)",
    ),
    "evaluate": ("keytrack.evaluation.cli", "PoseTrack evaluation (MOTA, %%IDSW, AP), as poseval"),
    "bench": ("keytrack.bench", "the matcher, keytrack train's step and the tracker against the roofline"),
    "cost": ("keytrack.models.cost", "parameters and FLOPs per pose pair of every matcher (Table 6)"),
    "convert-checkpoint": ("keytrack.convert", "rewrite a checkpoint of a former layout in the current one"),
    "export-weights": (
        "keytrack.weights.cli",
        "strip a training checkpoint to its weights and config (the shipped matchers' format)",
    ),
    "track-video": ("keytrack.video.cli", "detect, estimate (TOKS) and track poses in a video, render it"),
}


class _RenamedOption(argparse._StoreAction):
    """A stored option that also answers to former spellings (:func:`renamed_option`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None and option_string not in self.option_strings:
            new = max(self.option_strings, key=len)
            print(f"{parser.prog}: warning: {option_string} is deprecated, use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def renamed_option(parser: argparse.ArgumentParser, flag: str, *old: str, **kwargs) -> argparse.Action:
    """``parser.add_argument(flag, **kwargs)`` (a stored value) that also accepts the deprecated
    spellings ``old``: hidden from ``--help`` (only ``flag`` is listed), they set the same value and
    count for ``required``; each use prints ``<prog>: warning: <old> is deprecated, use <flag>`` on
    stderr."""
    action = parser.add_argument(flag, action=_RenamedOption, **kwargs)
    for spelling in old:
        if spelling in parser._option_string_actions:
            raise ValueError(f"{parser.prog}: {spelling} is already an option")
        # The same action under another name: argparse parses it (``--old=X`` and abbreviations too)
        # and sees the action given, while --help lists the action's own option strings only.
        parser._option_string_actions[spelling] = action
    return action


def at_least_one(value: str) -> int:
    """An argparse ``type``: an integer >= 1 (a look-back, a stride, a count, a batch size)."""
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1 or str(k) != value.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return k


def _source_help(module: str) -> str:
    """``module``'s ``HELP`` string, else its docstring's first line, read from its source file
    without importing it or its package (a plug-in's imports, Lightning's say, take seconds)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    for part in rest:
        locations = list(spec.submodule_search_locations or []) if spec else []
        spec = importlib.machinery.PathFinder.find_spec(part, locations) if locations else None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["HELP"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return (ast.get_docstring(tree) or "").strip().split("\n")[0]


def plugin_commands() -> dict[str, tuple[str, str]]:
    """The commands installed packages add (entry points of :data:`PLUGIN_GROUP`): name -> (module,
    one-line help). A plug-in never replaces a command of the library's own."""
    found = {}
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        if entry.name not in COMMANDS and entry.name not in found:
            found[entry.name] = (entry.module, _source_help(entry.module).replace("%", "%%"))
    return found


def all_commands() -> dict[str, tuple[str, str]]:
    """Every command: the library's own, then the plug-ins'."""
    return {**COMMANDS, **plugin_commands()}


def command(name: str) -> ModuleType:
    """The module of command ``name`` (the library's or a plug-in's), imported: its ``run`` and
    whatever else it offers (``command("train").train(cfg)`` trains a run in this process)."""
    commands = COMMANDS if name in COMMANDS else plugin_commands()
    if name not in commands:
        raise LookupError(
            f"no keytrack command {name!r} is installed (known: {', '.join(all_commands())}; "
            f"plug-ins are entry points of {PLUGIN_GROUP!r}: pip install -e . registers them)"
        )
    return importlib.import_module(commands[name][0])


def build_parser(
    commands: dict[str, tuple[str, str]] | None = None, *, arguments: bool = True
) -> argparse.ArgumentParser:
    """The parser of ``commands`` (default: every command). ``arguments=False`` lists the commands
    without importing their modules (``keytrack --help``, a mistyped command)."""
    commands = all_commands() if commands is None else commands
    parser = argparse.ArgumentParser(prog="keytrack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of bad input too (also KEYTRACK_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_.replace("%%", "%"))  # help is %-formatted
        p.set_defaults(_module=module)
        if arguments:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from keytrack.errors import debug_requested, run_command

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    # Import only the module of the command asked for (torch imports are slow); none to list them.
    name = next((a for a in argv if not a.startswith("-")), None)
    commands = all_commands() if name not in COMMANDS else COMMANDS
    known = name in commands
    prog = f"keytrack {name}" if known else "keytrack"
    parser = build_parser({name: commands[name]} if known else commands, arguments=known)
    args = parser.parse_args(argv)  # bad arguments: argparse's usage line and status 2
    return run_command(prog, lambda: importlib.import_module(args._module).run(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
