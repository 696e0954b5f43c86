"""LightningDataModule of track lists for the track-level matcher (beyond the paper).

Training batches are ``loader.batch_size`` lists drawn uniformly (each one pose with every track of
its window, :mod:`keytrack.track_lists`), from the training videos at the frame strides
``pairs.strides`` (every offset), augmented; validation goes through every list of the validation
videos once (strides at offset 0, the frames ``keytrack track --stride`` keeps), in batches of
``loader.val_batch_size`` lists, unaugmented.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from keytrack.augment import with_predicted_copies
from keytrack.config import ConfigError
from keytrack.data import EpochRandomSampler, identity_collate, load_dataset
from keytrack.datamodules.pose_pairs import check_split
from keytrack.pairs import split_videos
from keytrack.poses import Dataset
from keytrack.settings import AugmentSettings, DataSettings, LoaderSettings, PairSettings
from keytrack.track_lists import TrackListDataset, track_lists_for

log = logging.getLogger("keytrack.data")


class TrackListDataModule(pl.LightningDataModule):
    """Train/val track lists split by video (seeded, as :class:`keytrack.datamodules.PosePairDataModule`).

    Typed arguments (:mod:`keytrack.settings`): ``data`` the poses (skipped when ``dataset`` is given)
    and the validation share, ``pairs`` the window ``δ``, the strides and the motion, ``augment`` the
    training lists' augmentation (flip, jitter, drop) and predicted-like copies, ``loader`` the
    batches (counted in lists), ``history`` the ``k`` appearances kept per track, ``hide_true`` the
    share of training lists whose true track is removed, ``seed`` the split and the draws.
    """

    def __init__(
        self,
        data: DataSettings,
        pairs: PairSettings,
        augment: AugmentSettings,
        loader: LoaderSettings,
        history: int,
        hide_true: float,
        seed: int,
        dataset: Dataset | None = None,
    ):
        super().__init__()
        self.data, self.pairs, self.augment, self.loader = data, pairs, augment, loader
        self.history, self.hide_true, self.seed = int(history), float(hide_true), int(seed)
        self.dataset = dataset
        self.train_set: TrackListDataset | None = None
        self.val_set: TrackListDataset | None = None

    def _lists(self, dataset: Dataset, videos: np.ndarray, all_offsets: bool):
        p = self.pairs
        return track_lists_for(
            dataset, videos, p.delta, self.history, p.strides, all_offsets=all_offsets, motion=p.motion
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.dataset is None:
            self.dataset = load_dataset(self.data)
        check_split(len(self.dataset.videos), self.data)
        train_videos, val_videos = split_videos(len(self.dataset.videos), self.data.val_fraction, self.seed)
        train_data = self.dataset
        if self.augment.predicted:  # + predicted-like copies of the training videos
            names = [self.dataset.videos[i].name for i in train_videos]
            train_data = with_predicted_copies(
                self.dataset.subset(names), list(self.augment.predicted), self.seed
            )
            train_videos = np.arange(len(train_data.videos))
        options = {"flip": self.augment.flip, "jitter": self.augment.jitter, "drop": self.augment.drop}
        self.train_set = TrackListDataset(
            self._lists(train_data, train_videos, True), options, seed=self.seed, hide_true=self.hide_true
        )
        self.val_set = TrackListDataset(self._lists(self.dataset, val_videos, False), seed=self.seed)
        for name, lists in (("training", self.train_set), ("validation", self.val_set)):
            if len(lists) == 0:
                raise ConfigError(
                    f"{name} track lists: none (no pose has a track in the "
                    f"{self.pairs.delta} frames before it)"
                )
        log.info(
            "track lists: train %d videos, %d lists; val %d videos, %d lists",
            len(train_videos),
            len(self.train_set),
            len(val_videos),
            len(self.val_set),
        )

    def train_dataloader(self) -> DataLoader:
        n = self.loader.samples_per_epoch or len(self.train_set)
        sampler = EpochRandomSampler(self.train_set, num_samples=int(n), seed=self.seed)
        return self._loader(self.train_set, batch_size=self.loader.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        batches = BatchSampler(SequentialSampler(self.val_set), self.loader.val_batch_size, drop_last=False)
        return self._loader(self.val_set, batch_sampler=batches)

    def _loader(self, dataset, batch_size=None, sampler=None, batch_sampler=None) -> DataLoader:
        workers = self.loader.num_workers
        if batch_sampler is not None:
            return DataLoader(
                dataset,
                batch_sampler=batch_sampler,
                collate_fn=identity_collate,
                num_workers=workers,
                persistent_workers=workers > 0,
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=identity_collate,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
