"""Options dataclasses that are also command lines: each field spelled once (:func:`opt`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence


def opt(default: Any = None, *flags: str, **argparse_kw: Any) -> Any:
    """A dataclass field that is also a command-line option: ``flags`` (default ``--<name>``) and
    ``add_argument``'s keywords; ``{ablation}`` in the help is the ablation's name (:func:`add_options`)."""
    return field(default=default, metadata={"flags": flags, "argparse": argparse_kw})


def add_options(
    parser, cls, ablation: str = "", *, skip: Sequence[str] = (), only: Sequence[str] | None = None
) -> None:
    """Every :func:`opt` field of the dataclass ``cls`` (those of ``only``, but ``skip``) as an option;
    ``{out}`` in a help is the ablation's default output folder."""
    from keytrack.ablations.profile import default_results_dir

    for f in dataclasses.fields(cls):
        if "argparse" not in f.metadata or f.name in skip or (only is not None and f.name not in only):
            continue
        kw = dict(f.metadata["argparse"])
        if "help" in kw:
            kw["help"] = kw["help"].replace("{ablation}", ablation)
            kw["help"] = kw["help"].replace("{out}", default_results_dir(ablation).as_posix())
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        parser.add_argument(
            *(f.metadata["flags"] or [f"--{f.name.replace('_', '-')}"]), dest=f.name, default=default, **kw
        )


@dataclass
class RunOptions:
    """The options every ablation that trains or tracks shares; each ablation's options extend them."""

    data: str | None = opt(help="PoseTrack18-layout folder (train split + test, or val) instead of synthetic")
    eval_split: str | None = opt(help="evaluation split under --data (default: test, else val)")
    out: str | None = opt(
        help="results folder (default: {out}[/<data>-<split>]; the committed "
        "tables are under results/, written only when given as --out)"
    )
    synthetic_test_videos: int | None = opt(
        20, type=int, help="videos of the synthetic test set without --data (default: %(default)s)"
    )
    device: str = opt("cpu", help="torch device of the matching network")
    batch_size: int = opt(16384, type=int, help="most pose pairs per network forward")
    threads: int | None = opt(type=int, help="torch CPU threads (default: torch's; 1 on a shared CPU)")
    retry_failed: bool = opt(
        True, "--no-retry-failed", action="store_false", help="keep recorded failures, do not rerun them"
    )
    wait_for_training: bool = opt(
        True, "--no-wait", action="store_false", help="do not wait for the same training in another process"
    )

    def __post_init__(self) -> None:
        for name in ("threads", "synthetic_test_videos"):
            if (value := getattr(self, name)) is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


def options_from(cls, args, **given):
    """``cls`` from parsed arguments: each field from the argument of its name (lists as tuples), or
    from ``given``; fields without either keep their defaults."""
    values = dict(given)
    for f in dataclasses.fields(cls):
        if f.name not in values and hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)
