"""Where an experiment's data comes from: the synthetic default or a PoseTrack18-layout folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keytrack.io import default_eval_split
from keytrack.poses import Dataset


def default_results_dir(ablation: str) -> Path:
    """Where ``ablation`` writes without ``--out``: ``runs/ablations/<ablation>``, a sweep
    (``sweep_<name>``) ``runs/sweeps/<name>``; never the committed ``results/`` folder."""
    from keytrack.outputs import default_out

    if ablation.startswith("sweep_"):
        return default_out("sweeps", ablation[len("sweep_") :])
    return default_out("ablations", ablation)


@dataclass(frozen=True)
class Profile:
    """``quick`` (``data_root`` None): train on the synthetic default (its ``data.synthetic`` config),
    evaluate on ``synthetic_eval_videos`` synthetic videos disjoint from it. ``full``: a PoseTrack18
    folder; ``train_split`` trains (and tunes baselines), ``eval_split`` evaluates (test, else val)."""

    data_root: Path | None = None
    train_split: str = "train"
    eval_split: str | None = None
    synthetic_eval_videos: int = 20
    synthetic_eval_seed: int = 0
    synthetic_eval_first_index: int = 1000

    @classmethod
    def from_data(cls, data: str | Path | None, eval_split: str | None = None, **kwargs) -> "Profile":
        """The ``full`` profile of ``data`` (``eval_split`` found when not given), or ``quick``."""
        if data is None:
            return cls(None, **kwargs)
        root = Path(data).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{data}: no such data folder")
        return cls(root, eval_split=eval_split or default_eval_split(root), **kwargs)

    @property
    def tag(self) -> str:
        """``synthetic`` or ``<data folder>-<eval split>``, a name for the results of this profile."""
        return "synthetic" if self.data_root is None else f"{self.data_root.name}-{self.eval_split}"

    def results_dir(self, ablation: str, root: str | Path | None = None) -> Path:
        """The default output of ``ablation`` (:func:`default_results_dir`: ``runs/ablations/<ablation>/``,
        a sweep's ``runs/sweeps/<name>/``), or ``<root>/<ablation>/``; with data ``.../<tag>/``."""
        base = default_results_dir(ablation) if root is None else Path(root) / ablation
        return base if self.data_root is None else base / self.tag

    def train_overrides(self) -> list[str]:
        """``key=value`` overrides that point a training config at this profile's training data."""
        if self.data_root is None:
            return []
        return [f"data.root={self.data_root}", f"data.split={self.train_split}"]

    def load_train(self, synthetic_videos: int = 40, synthetic_seed: int = 0) -> Dataset:
        """Ground truth of the training split (all of it: training and validation videos)."""
        if self.data_root is None:
            from keytrack.synth import default_dataset

            return default_dataset(num_videos=int(synthetic_videos), seed=int(synthetic_seed))
        from keytrack.io import read_dataset

        return read_dataset(self.data_root, split=self.train_split, keep_empty_poses=True)

    def load_eval(self) -> Dataset:
        """Ground truth of the evaluation split, read as ``keytrack evaluate`` reads it."""
        if self.data_root is None:
            from keytrack.synth import generate_dataset

            first = self.synthetic_eval_first_index
            return generate_dataset(
                self.synthetic_eval_videos, seed=self.synthetic_eval_seed, first_index=first
            )
        from keytrack.io import read_dataset

        return read_dataset(self.data_root, split=self.eval_split, keep_empty_poses=True)

    def describe(self, split: str) -> str:
        """Human-readable name of a split (``"train"`` or ``"eval"``) of this profile."""
        if self.data_root is not None:
            name = self.train_split if split == "train" else self.eval_split
            return f"{display_path(self.data_root)} [{name}]"
        if split == "train":
            return "synthetic default (keytrack.synth.default_dataset)"
        return (
            f"synthetic test set: generate_dataset({self.synthetic_eval_videos}, "
            f"seed={self.synthetic_eval_seed}, first_index={self.synthetic_eval_first_index})"
        )


def display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when that is shorter (for notes under tables)."""
    path = Path(path)
    try:
        rel = os.path.relpath(path.resolve())
    except ValueError:  # another drive
        return str(path)
    return rel if len(rel) < len(str(path.resolve())) else str(path.resolve())
