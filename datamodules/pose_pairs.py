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
from omegaconf import DictConfig
from torch.utils.data import DataLoader, SequentialSampler

from keytrack.augment import with_predicted_copies
from keytrack.data import (CandidateLists, EpochRandomSampler, EpochWeightedRandomSampler, ListBatches, TokenizedPairs,
                           class_balanced_weights, identity_collate, load_dataset)
from keytrack.pairs import split_videos
from keytrack.poses import Dataset

log = logging.getLogger("keytrack.data")


class PosePairDataModule(pl.LightningDataModule):
    """Train/val pose pairs split by video (seeded); training batches drawn by a
    ``WeightedRandomSampler`` so matching and non-matching pairs are equally likely.

    ``cfg`` is a full experiment config (``data``, ``pairs``, ``tokens``, ``loader``, ``seed``);
    pass ``dataset`` to skip reading ``cfg.data``.
    """

    def __init__(self, cfg: DictConfig, dataset: Dataset | None = None):
        super().__init__()
        self.cfg = cfg
        self.dataset = dataset
        self.train_set: TokenizedPairs | None = None
        self.val_set: TokenizedPairs | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.cfg
        if self.dataset is None:
            self.dataset = load_dataset(cfg.data)
        train_videos, val_videos = split_videos(len(self.dataset.videos), float(cfg.data.val_fraction),
                                                int(cfg.seed))
        strides = tuple(cfg.pairs.strides)
        train_data = self.dataset
        if cfg.augment.predicted:                    # + predicted-like copies of the training videos
            train_data = with_predicted_copies(
                self.dataset.subset([self.dataset.videos[i].name for i in train_videos]),
                cfg.augment.predicted, int(cfg.seed))
            train_videos = np.arange(len(train_data.videos))
        self.train_set = TokenizedPairs.build(train_data, train_videos, cfg, seed=int(cfg.seed), augment=True,
                                              strides=strides)
        # Validation at the same strides, offset 0 only (the frames keytrack track --frame-stride keeps).
        self.val_set = TokenizedPairs.build(self.dataset, val_videos, cfg,
                                            balanced="mask" if cfg.pairs.val_balanced else False,
                                            seed=int(cfg.seed), strides=strides, all_offsets=False)
        if len(self.train_set) == 0 or 0 in self.train_set.class_counts():
            raise ValueError(f"training pairs: need both classes, got (non-matching, matching) = "
                             f"{self.train_set.class_counts()} from {len(train_videos)} videos")
        log.info("pairs: train %d videos (non-matching, matching) = %s; val %d videos %s",
                 len(train_videos), self.train_set.class_counts(), len(val_videos), self.val_set.class_counts())

    @property
    def listwise(self) -> bool:
        return str(self.cfg.loss.name) == "listwise"

    def train_dataloader(self) -> DataLoader:
        # The order of epoch k depends on (seed, k) alone: a resumed run replays it exactly.
        seed = int(self.cfg.seed)
        if self.listwise:
            lists = CandidateLists(self.train_set, float(self.cfg.loss.hide_true))
            n = self.cfg.loader.samples_per_epoch or len(lists)
            sampler = EpochRandomSampler(lists, num_samples=int(n), seed=seed)
            return self._loader(lists, int(self.cfg.loader.batch_size), sampler=sampler)
        n = self.cfg.loader.samples_per_epoch or len(self.train_set)
        sampler = EpochWeightedRandomSampler(class_balanced_weights(self.train_set.labels), num_samples=int(n),
                                             seed=seed)
        return self._loader(self.train_set, int(self.cfg.loader.batch_size), sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        lists = CandidateLists(self.val_set)
        return self._loader(lists, batch_sampler=ListBatches(SequentialSampler(lists),
                                                             int(self.cfg.loader.val_batch_size)))

    def _loader(self, dataset, batch_size: int | None = None, sampler=None, batch_sampler=None) -> DataLoader:
        workers = int(self.cfg.loader.num_workers)
        if batch_sampler is not None:
            return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=identity_collate,
                              num_workers=workers, persistent_workers=workers > 0)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                          collate_fn=identity_collate, num_workers=workers,
                          persistent_workers=workers > 0)
