"""Trained matchers that ship with keytrack, loadable by name.

Every command that takes ``--checkpoint`` (``keytrack track``, ``track-video``, ``diagnose``,
``ablate``) and every loader (:meth:`keytrack.tracking.PoseEntailmentScorer.from_checkpoint`,
:func:`keytrack.models.factory.load_matcher`) accepts a shipped name where it accepts a checkpoint
file; all of them go through :func:`resolve_checkpoint`::

    keytrack track --input preds/ --output tracked/ --checkpoint keytrack-synthetic

    from keytrack import weights
    scorer = weights.load("keytrack-synthetic")        # a PoseEntailmentScorer, ready for a Tracker
    path = weights.resolve_checkpoint("keytrack-synthetic")   # the file inside the package
    weights.names()                                    # ("keytrack-synthetic",)

Shipped (:data:`SHIPPED`):

* ``keytrack-synthetic`` (``keytrack-synthetic.pt``, 1.7 MB): the improved Transformer Matching
  Network (``experiments/improved.yaml``: 4 layers, hidden 128, 0.42 M parameters, δ = 4) trained on
  the project's own synthetic scenes (``keytrack synth``'s default: 40 videos, seed 0), training
  seed 0; made by ``make weights``, that is ``keytrack train experiment=improved seed=0`` and
  ``keytrack export-weights`` of its best checkpoint (validation rank-1 0.991). Trained without
  motion (``pairs.motion: none``); it learned from synthetic motion only, so a network trained on
  your own data (``keytrack train data.root=DIR``) may track that data better.

A shipped file is a training checkpoint stripped to what tracking reads (:func:`export_weights`):
the weights (fp32) and the run's config, without the optimizer, scheduler, loop and callback state;
it loads through the same path as the checkpoint it came from and scores exactly as it does.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from keytrack.errors import CheckpointError

__all__ = [
    "SHIPPED",
    "WEIGHTS_DIR",
    "ShippedWeights",
    "names",
    "resolve_checkpoint",
    "checkpoint_argument",
    "load",
    "export_weights",
]

#: The folder of the shipped files (inside the installed package).
WEIGHTS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ShippedWeights:
    """A shipped matcher: its file in :data:`WEIGHTS_DIR` and what it is, in one line."""

    file: str
    summary: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


#: name -> shipped matcher.
SHIPPED: dict[str, ShippedWeights] = {
    "keytrack-synthetic": ShippedWeights(
        "keytrack-synthetic.pt",
        "improved Transformer Matching Network trained on the synthetic scenes (experiment improved, seed 0)",
    ),
}


def names() -> tuple[str, ...]:
    """The names of the shipped matchers."""
    return tuple(SHIPPED)


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """The checkpoint file ``name_or_path`` means: an existing file as it is, else the file of the
    shipped matcher of that name. Anything else raises :class:`~keytrack.errors.CheckpointError`
    naming the shipped matchers."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED.get(str(name_or_path))
    if shipped is not None:
        if not shipped.path.is_file():
            raise CheckpointError(
                f"{name_or_path}: shipped matcher, but its file {shipped.path} is missing from this "
                "installation (reinstall keytrack, or `make weights` in a source checkout)"
            )
        return shipped.path
    what = (
        "a folder, not a checkpoint (give its checkpoints/best.ckpt)"
        if path.is_dir()
        else "no such checkpoint"
    )
    raise CheckpointError(
        f"{name_or_path}: {what}: neither a checkpoint file nor a shipped matcher "
        f"(shipped: {', '.join(names())})"
    )


def checkpoint_argument(value: str) -> str:
    """:func:`resolve_checkpoint` as an argparse ``type``: the file's path, or a usage error."""
    try:
        return str(resolve_checkpoint(value))
    except CheckpointError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def load(name_or_path: str | Path = "keytrack-synthetic", device: str = "cpu", **kwargs):
    """The scorer of a shipped matcher (or of any checkpoint file): a
    :class:`~keytrack.tracking.PoseEntailmentScorer` (a track-level checkpoint gives a
    :class:`~keytrack.tracking.track_scorer.TrackEntailmentScorer`). ``kwargs`` go to
    :meth:`~keytrack.tracking.PoseEntailmentScorer.from_checkpoint` (``batch_size``, ``precision``, ...).
    Its network is ``scorer.model``; ``keytrack.models.factory.load_matcher(name)`` gives the
    network and its experiment config."""
    from keytrack.tracking.scorers import PoseEntailmentScorer

    return PoseEntailmentScorer.from_checkpoint(
        str(resolve_checkpoint(name_or_path)), device=device, **kwargs
    )


def _checkpoint_in(run: Path) -> Path:
    """The best checkpoint of a training run's folder (its metrics.json's, else its only
    ``checkpoints/best.ckpt``, or an older run's ``best-epoch=NN.ckpt``)."""
    from keytrack.runlogs import find_best_checkpoint, read_run_metrics

    if (run / "metrics.json").is_file():
        best = read_run_metrics(run).get("best_checkpoint")
        if best:
            best = Path(best)
            for candidate in (best, run / "checkpoints" / best.name):
                if candidate.is_file():
                    return candidate
    found = find_best_checkpoint(run)
    if len(found) != 1:
        raise CheckpointError(
            f"{run}: a folder without one best checkpoint (found {len(found)} checkpoints/best*.ckpt "
            "and no metrics.json naming one); give the checkpoint file"
        )
    return found[0]


def _source_name(path: Path) -> str:
    """``path`` relative to the working folder when inside it (no machine's absolute path in a file)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def export_weights(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the training checkpoint ``checkpoint`` (a file, or a run folder: its best checkpoint)
    to ``out`` stripped to what tracking reads: ``state_dict`` (floating tensors as fp32) and
    ``hyper_parameters`` (the run's config), plus ``keytrack_export``: where it came from (path,
    epoch, step). The optimizer, scheduler, loop and callback state are dropped. Written atomically,
    the same bytes for the same checkpoint; the result is loaded back once to check it. Returns ``out``."""
    import io

    import torch

    from keytrack.atomic import atomic_path
    from keytrack.convert import check_current

    source = Path(checkpoint)
    if source.is_dir():
        source = _checkpoint_in(source)
    if not source.is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint")
    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{source}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    if (
        not isinstance(state, dict)
        or "state_dict" not in state
        or "cfg" not in (state.get("hyper_parameters") or {})
    ):
        raise CheckpointError(
            f"{source}: not a keytrack training checkpoint (no state_dict and hyper_parameters.cfg)"
        )
    check_current(state, source, joints_record=False)
    weights = {
        k: (v.detach().to(torch.float32) if v.is_floating_point() else v.detach()).clone().contiguous()
        for k, v in state["state_dict"].items()
    }
    stripped = {
        "state_dict": weights,
        "hyper_parameters": state["hyper_parameters"],
        "keytrack_export": {
            "source": _source_name(source),
            "epoch": state.get("epoch"),
            "global_step": state.get("global_step"),
        },
    }
    buffer = io.BytesIO()  # saved in memory: the archive's inner names do not depend on the file's name
    torch.save(stripped, buffer)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    from keytrack.models.factory import load_matcher

    load_matcher(str(out))  # the stripped file loads through the normal path
    return out
