"""LightningDataModule of tokenized pose pairs: classes drawn equally (A.4), or candidate lists.

``loss.name = bce`` (the paper): training batches are pairs drawn by a ``WeightedRandomSampler``
so that matching and non-matching pairs are equally likely. ``loss.name = listwise``: training
batches are candidate lists (one pose with every candidate of one earlier frame,
:class:`keytrack.data.CandidateLists`) drawn uniformly; ``loader.batch_size`` and
``loader.samples_per_epoch`` then count lists. Validation always goes through *every* pair of the
validation videos in whole candidate lists, so the ranking metrics see each pose's full candidate
set as the tracker does; the pair metrics (accuracy, F1, AUROC) use the class-balanced subset
(``pairs.val_balanced``), as before.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, SequentialSampler

from keytrack.augment import with_predicted_copies
from keytrack.config import ConfigError
from keytrack.data import (
    CandidateLists,
    EpochRandomSampler,
    EpochWeightedRandomSampler,
    ListBatches,
    TokenizedPairs,
    class_balanced_weights,
    identity_collate,
    load_dataset,
)
from keytrack.encoders import PairEncoder
from keytrack.frames import frame_source
from keytrack.pairs import split_videos
from keytrack.poses import Dataset
from keytrack.settings import AugmentSettings, DataSettings, LoaderSettings, LossSettings, PairSettings

log = logging.getLogger("keytrack.data")


def check_split(num_videos: int, data: DataSettings) -> None:
    """Refuse data whose videos cannot be split into training and validation videos (pairs never
    cross videos, so validation needs a video of its own): a clear message instead of an empty
    validation set failing deep in Lightning."""
    where = f"data.root={data.root} (split {data.split})" if data.root else "the synthetic data"
    if num_videos < 2:
        raise ConfigError(
            f"{where}: {num_videos} video(s), too few videos to hold out validation (whole videos "
            f"are held out, data.val_fraction={data.val_fraction}); give a folder with at least 2 "
            f"videos (and data.val_fraction > 0, e.g. data.val_fraction=0.5), or another split "
            f"with data.split=<name>"
        )
    if data.val_fraction <= 0:
        raise ConfigError(
            f"{where}: data.val_fraction={data.val_fraction} holds out no video for validation; set "
            f"data.val_fraction to a share in (0, 1), e.g. data.val_fraction=0.2"
        )


class PosePairDataModule(pl.LightningDataModule):
    """Train/val pose pairs split by video (seeded); training batches drawn by a
    ``WeightedRandomSampler`` so matching and non-matching pairs are equally likely.

    Typed arguments (:mod:`keytrack.settings`): ``data`` the poses (skipped when ``dataset`` is
    given) and the validation share, ``pairs`` which pairs, ``encoder`` the matcher's pair encoder,
    ``augment`` the training pairs' augmentation, ``loader`` the batches, ``loss`` whether batches
    are pairs or candidate lists, ``seed`` the split, the sampling and the augmentation.
    """

    def __init__(
        self,
        data: DataSettings,
        pairs: PairSettings,
        encoder: PairEncoder,
        augment: AugmentSettings,
        loader: LoaderSettings,
        loss: LossSettings,
        seed: int,
        dataset: Dataset | None = None,
    ):
        super().__init__()
        self.data, self.pairs, self.encoder, self.augment = data, pairs, encoder, augment
        self.loader, self.loss, self.seed = loader, loss, int(seed)
        self.dataset = dataset
        self.train_set: TokenizedPairs | None = None
        self.val_set: TokenizedPairs | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.dataset is None:
            self.dataset = load_dataset(self.data)
        seed = self.seed
        check_split(len(self.dataset.videos), self.data)
        train_videos, val_videos = split_videos(len(self.dataset.videos), self.data.val_fraction, seed)
        train_data = self.dataset
        if self.augment.predicted:  # + predicted-like copies of the training videos
            train_data = with_predicted_copies(
                self.dataset.subset([self.dataset.videos[i].name for i in train_videos]),
                list(self.augment.predicted),
                seed,
            )
            train_videos = np.arange(len(train_data.videos))
        frames = frame_source(self.data) if self.encoder.needs_crops else None
        self.train_set = TokenizedPairs.from_settings(
            train_data, train_videos, self.encoder, self.pairs, self.augment, seed=seed, frames=frames
        )
        # Validation at the same strides, offset 0 only (the frames keytrack track --stride keeps).
        self.val_set = TokenizedPairs.from_settings(
            self.dataset,
            val_videos,
            self.encoder,
            self.pairs,
            balanced="mask" if self.pairs.val_balanced else False,
            seed=seed,
            frames=frames,
            all_offsets=False,
        )
        if len(self.train_set) == 0 or 0 in self.train_set.class_counts():
            raise ConfigError(
                f"training pairs: need both classes, got (non-matching, matching) = "
                f"{self.train_set.class_counts()} from {len(train_videos)} videos"
            )
        log.info(
            "pairs: train %d videos (non-matching, matching) = %s; val %d videos %s",
            len(train_videos),
            self.train_set.class_counts(),
            len(val_videos),
            self.val_set.class_counts(),
        )

    @property
    def listwise(self) -> bool:
        return self.loss.listwise

    def train_dataloader(self) -> DataLoader:
        # The order of epoch k depends on (seed, k) alone: a resumed run replays it exactly.
        if self.listwise:
            lists = CandidateLists(self.train_set, self.loss.hide_true)
            n = self.loader.samples_per_epoch or len(lists)
            sampler = EpochRandomSampler(lists, num_samples=int(n), seed=self.seed)
            return self._loader(lists, self.loader.batch_size, sampler=sampler)
        n = self.loader.samples_per_epoch or len(self.train_set)
        weights = class_balanced_weights(self.train_set.labels)
        sampler = EpochWeightedRandomSampler(weights, num_samples=int(n), seed=self.seed)
        return self._loader(self.train_set, self.loader.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        lists = CandidateLists(self.val_set)
        batches = ListBatches(SequentialSampler(lists), self.loader.val_batch_size)
        return self._loader(lists, batch_sampler=batches)

    def _loader(self, dataset, batch_size: int | None = None, sampler=None, batch_sampler=None) -> DataLoader:
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
