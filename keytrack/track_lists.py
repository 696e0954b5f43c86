"""Listwise training data of the track-level matcher (beyond the paper;
:mod:`keytrack.models.track_transformer`).

For every pose at frame ``t`` of a ground-truth video, the tracks alive in the window
``t-δ .. t-1`` form its *list*: each track with its last ``k`` appearances in the window, most recent
first, and their frame gaps ``Δ``. The list's target is the pose's own track, or "no match" (``-1``)
when that track is not in the window (a person entering, or back after more than ``δ`` frames).
A pose with no track in its window has no list (the tracker starts a track without asking).

:func:`build_track_lists` works on the columns of a :class:`~keytrack.poses.PoseTable`: the pairs of
:func:`keytrack.pairs.sample_pairs` (every pose against every pose of the ``δ`` earlier frames) are
sorted by (pose, track, ``Δ``), and a cumulative sum numbers the (pose, track) entries; no Python loop
over poses. :func:`track_lists_for` adds the frame strides (``pairs.strides``: each video also at 1/2
and 1/4 its frame rate, :func:`keytrack.data.with_frame_strides`).

:class:`TrackListDataset` serves whole batches of lists, the lists' entries flattened
(``query [E, 15, 3]``, ``history [E, k, 15, 3]``, ``delta [E, k]``, ``group [E]``, ``target [B]``),
augmented per list where asked: one horizontal flip for the whole list (left and right joints
swapped), keypoint jitter and dropped keypoints per pose (:mod:`keytrack.augment`). The network's
input is free of translation and scale, so those augmentations would change nothing and are not
applied. ``hide_true``: a list loses its true track with this probability (its target becomes "no
match"), as when the detector missed the person for ``δ`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from keytrack.pairs import sample_pairs, track_velocity
from keytrack.poses import Dataset, PoseTable
from keytrack.skeleton import FLIP

if TYPE_CHECKING:
    from keytrack.models.track_transformer import TrackTransformerConfig
    from keytrack.settings import (
        AugmentSettings,
        DataSettings,
        LoaderSettings,
        OptimSettings,
        PairSettings,
        ValidationSettings,
    )

__all__ = [
    "TrackLists",
    "build_track_lists",
    "track_lists_for",
    "TrackListDataset",
    "list_targets",
    "TrackTrainingSettings",
    "track_training_settings",
]


@dataclass
class TrackLists:
    """Lists of (pose, tracks in its window) over the rows of ``table``.

    ``query [L]`` the table row of each list's pose; ``target [L]`` its true track's position in the
    list, ``-1`` for no match. Entries ``[E]`` (one per (pose, track)), grouped by list in order:
    ``entry_list`` the list, ``entry_track`` the track id, ``history [E, k]`` the rows of the track's
    last ``k`` poses (most recent first, ``-1`` padded), ``history_delta [E, k]`` their ``Δ`` (0
    padded), ``label`` True for the pose's own track. ``velocity [N, 2]`` each row's track velocity
    (:func:`keytrack.pairs.track_velocity`) where the lists were built for ``motion = "velocity"``.
    """

    table: PoseTable
    query: np.ndarray
    target: np.ndarray
    entry_list: np.ndarray
    entry_track: np.ndarray
    history: np.ndarray
    history_delta: np.ndarray
    label: np.ndarray
    velocity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.query)

    @property
    def list_start(self) -> np.ndarray:
        """``[L]`` the first entry of each list."""
        return np.searchsorted(self.entry_list, np.arange(len(self.query)))

    @property
    def list_length(self) -> np.ndarray:
        return np.bincount(self.entry_list, minlength=len(self.query))


def list_targets(label: np.ndarray, entry_list: np.ndarray, num_lists: int) -> np.ndarray:
    """``[L]`` the position of the labelled entry within each list (entries sorted by list), -1 if none."""
    label, entry_list = np.asarray(label, bool), np.asarray(entry_list, np.int64)
    start = np.searchsorted(entry_list, np.arange(num_lists))
    pos = np.arange(len(entry_list)) - start[entry_list]
    target = np.full(num_lists, -1, np.int64)
    target[entry_list[label]] = pos[label]
    return target


def build_track_lists(table: PoseTable, delta: int = 4, history: int = 4, motion: str = "none") -> TrackLists:
    """The track lists of every pose of ``table`` with a track id and a visible keypoint (module
    docstring): the tracks of frames ``t-δ .. t-1`` of its video, each with its last ``history``
    appearances there."""
    if int(history) < 1 or int(history) > int(delta):
        raise ValueError(f"build_track_lists: history must lie in 1..delta ({delta}), got {history}")
    if motion not in ("none", "velocity"):
        raise ValueError(f"build_track_lists: motion must be 'none' or 'velocity', got {motion!r}")
    k = int(history)
    pairs = sample_pairs(table, delta=int(delta))
    track = np.asarray(table.track_ids, dtype=np.int64)
    cur, prev, gap = pairs.current, pairs.previous, pairs.delta
    order = np.lexsort((prev, gap, track[prev], cur))  # by pose, track, Δ (most recent first)
    cur, prev, gap = cur[order], prev[order], gap[order]
    ptrack = track[prev]
    new = np.ones(len(cur), bool)
    new[1:] = (cur[1:] != cur[:-1]) | (ptrack[1:] != ptrack[:-1])
    entry = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    rank = np.arange(len(cur)) - first[entry]
    keep = rank < k
    rows = np.full((len(first), k), -1, np.int64)
    gaps = np.zeros((len(first), k), np.int64)
    rows[entry[keep], rank[keep]] = prev[keep]
    gaps[entry[keep], rank[keep]] = gap[keep]
    entry_query, entry_track = cur[first], ptrack[first]
    new_list = np.ones(len(first), bool)
    new_list[1:] = entry_query[1:] != entry_query[:-1]
    entry_list = np.cumsum(new_list) - 1
    label = entry_track == track[entry_query]
    num_lists = int(new_list.sum())
    return TrackLists(
        table=table,
        query=entry_query[new_list].astype(np.int64),
        target=list_targets(label, entry_list, num_lists),
        entry_list=entry_list.astype(np.int64),
        entry_track=entry_track.astype(np.int64),
        history=rows,
        history_delta=gaps,
        label=label,
        velocity=track_velocity(table, int(delta)) if motion == "velocity" else None,
    )


def track_lists_for(
    dataset: Dataset,
    videos: np.ndarray | None = None,
    delta: int = 4,
    history: int = 4,
    strides=(1,),
    all_offsets: bool = True,
    motion: str = "none",
) -> TrackLists:
    """The track lists of ``videos`` (indices into ``dataset.videos``; None = all), also at the frame
    ``strides`` (every offset, or offset 0 only: the frames ``keytrack track --stride`` keeps)."""
    from keytrack.data import with_frame_strides

    if videos is not None:
        dataset = dataset.subset([dataset.videos[i].name for i in videos])
    dataset = with_frame_strides(dataset, tuple(strides), all_offsets)
    return build_track_lists(dataset.table(), delta=delta, history=history, motion=motion)


class TrackListDataset(torch.utils.data.Dataset):
    """Batches of track lists for training and validation (module docstring).

    ``__getitems__(indices)`` returns, for the ``B`` lists drawn: ``query [E, 15, 3]`` (each list's
    pose, once per entry), ``history [E, k, 15, 3]``, ``delta [E, k]``, ``group [E]`` (``0..B-1``),
    ``target [B]`` and ``label [E]``. ``augment``: ``flip``, ``jitter``, ``drop`` of the ``augment``
    settings (other keys are ignored); the generator is seeded from ``seed`` and, per epoch, by
    :meth:`set_epoch`.
    """

    def __init__(self, lists: TrackLists, augment: dict | None = None, seed: int = 0, hide_true: float = 0.0):
        if not 0.0 <= float(hide_true) <= 1.0:
            raise ValueError(f"loss.hide_true must lie in [0, 1], got {hide_true}")
        self.lists = lists
        self.augment = {k: float((augment or {}).get(k) or 0.0) for k in ("flip", "jitter", "drop")}
        self.hide_true = float(hide_true)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        t = lists.table
        self.keypoints = torch.as_tensor(np.asarray(t.keypoints), dtype=torch.float32)
        self.frame_size = torch.as_tensor(np.asarray(t.frame_size), dtype=torch.float32)
        self.start = torch.as_tensor(lists.list_start)
        self.length = torch.as_tensor(lists.list_length)
        self.query = torch.as_tensor(lists.query)
        self.rows = torch.as_tensor(lists.history)
        self.gaps = torch.as_tensor(lists.history_delta)
        self.labels = torch.as_tensor(lists.label)
        self.velocity = (
            None if lists.velocity is None else torch.as_tensor(lists.velocity, dtype=torch.float32)
        )

    def set_epoch(self, epoch: int) -> None:
        from keytrack.data import epoch_seed

        self.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        return len(self.query)

    def entries(self, lists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(entry indices, group)`` of the lists ``lists``, their entries in order."""
        lengths = self.length[lists]
        group = torch.repeat_interleave(torch.arange(len(lists)), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        return self.start[lists][group] + (torch.arange(int(lengths.sum())) - first[group]), group

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.batch(torch.as_tensor(indices, dtype=torch.long), augment=True)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch(torch.as_tensor([index]), augment=False)

    def batch(self, lists: torch.Tensor, augment: bool = True) -> dict[str, torch.Tensor]:
        """The lists ``lists`` as one batch (class docstring); ``augment=False``: as stored."""
        idx, group = self.entries(lists)
        labels = self.labels[idx]
        if augment and self.hide_true > 0 and len(idx):
            hide = torch.rand(len(lists), generator=self.generator) < self.hide_true
            keep = ~(hide[group] & labels)
            idx, group, labels = idx[keep], group[keep], labels[keep]
        present, group = torch.unique_consecutive(group, return_inverse=True)
        lists = lists[present]
        rows, gaps = self.rows[idx], self.gaps[idx]
        used = torch.cat([self.query[lists], rows.flatten()])
        used, inverse = torch.unique(used.clamp_min(0), return_inverse=True)
        poses = self.keypoints[used]
        if augment:
            poses = self._per_pose(poses, self.frame_size[used])
        query = poses[inverse[: len(lists)]][group]
        history = poses[inverse[len(lists) :]].view(len(idx), -1, *poses.shape[1:]).clone()
        history[gaps == 0] = 0.0
        if self.velocity is not None:  # the tracker's motion "velocity": each pose moved by Δ × velocity
            shift = self.velocity[rows.clamp_min(0)] * gaps[..., None]
            history[..., :2] += torch.where(history[..., 2:] > 0, shift[:, :, None, :], 0.0)
        if augment and self.augment["flip"] > 0:
            mirror = (torch.rand(len(lists), generator=self.generator) < self.augment["flip"])[group]
            width = self.frame_size[self.query[lists]][group, 0]
            query, history = _flip(query, mirror, width), _flip(history, mirror, width)
        entry_list = group.numpy()
        target = list_targets(labels.numpy(), entry_list, len(lists))
        return {
            "query": query,
            "history": history,
            "delta": gaps,
            "group": group,
            "target": torch.as_tensor(target),
            "label": labels.long(),
        }

    def _per_pose(self, poses: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        from keytrack.augment import _drop, _jitter

        poses = poses.clone()
        if self.augment["jitter"] > 0:
            _jitter(poses, size, self.augment["jitter"], self.generator)
        if self.augment["drop"] > 0:
            _drop(poses, self.augment["drop"], self.generator)
        return poses


def _flip(poses: torch.Tensor, mirror: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``poses [E, ..., 15, 3]`` with the rows ``mirror [E]`` mirrored about the frame's width:
    ``x -> width - x`` on present keypoints and left/right joints swapped."""
    if not mirror.any():
        return poses
    out = poses.clone()
    flipped = poses[mirror][..., torch.as_tensor(FLIP), :]
    w = width[mirror].view(-1, *([1] * (poses.ndim - 2)))
    flipped[..., 0] = torch.where(flipped[..., 2] > 0, w - flipped[..., 0], flipped[..., 0])
    out[mirror] = flipped
    return out


@dataclass(frozen=True)
class TrackTrainingSettings:
    """Every typed piece of a track-level training run (:func:`track_training_settings`): the sections
    of the pair matchers' runs it shares (:mod:`keytrack.settings`), the network's config, and
    ``hide_true`` (``loss.hide_true``); the objective is always
    :func:`keytrack.losses.track_listwise_loss`."""

    seed: int
    data: DataSettings
    pairs: PairSettings  # δ, strides, motion
    augment: AugmentSettings  # flip, jitter and drop are used
    optim: OptimSettings
    loader: LoaderSettings  # batch sizes count lists
    validation: ValidationSettings
    model: TrackTransformerConfig
    hide_true: float


def track_training_settings(cfg) -> TrackTrainingSettings:
    """The typed settings of an experiment config with ``model.name = track_transformer``, each checked."""
    from omegaconf import OmegaConf

    from keytrack.config import ConfigError
    from keytrack.models.track_transformer import track_model_config
    from keytrack.settings import (
        LoaderSettings,
        OptimSettings,
        ValidationSettings,
        augment_settings,
        data_settings,
        pair_settings,
    )

    o, loader, v = cfg.optim, cfg.loader, cfg.validation
    pairs = pair_settings(cfg.pairs)
    if pairs.nearest is not None:
        raise ConfigError(
            "pairs.nearest: the track-level matcher ranks every track of the window; leave it null"
        )
    try:
        model = track_model_config(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    hide = float(OmegaConf.select(cfg, "loss.hide_true", default=0.0))
    if not 0.0 <= hide <= 1.0:
        raise ConfigError(f"loss.hide_true must lie in [0, 1], got {hide}")
    return TrackTrainingSettings(
        seed=int(cfg.seed),
        data=data_settings(cfg.data),
        pairs=pairs,
        augment=augment_settings(cfg.augment),
        optim=OptimSettings(float(o.lr), float(o.weight_decay), float(o.warmup_fraction)),
        loader=LoaderSettings(
            batch_size=int(loader.batch_size),
            val_batch_size=int(loader.val_batch_size),
            num_workers=int(loader.num_workers),
            samples_per_epoch=None if loader.samples_per_epoch is None else int(loader.samples_per_epoch),
        ),
        validation=ValidationSettings(match_threshold=float(v.match_threshold), monitor=str(v.monitor)),
        model=model,
        hide_true=hide,
    )
