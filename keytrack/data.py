"""From a data config to tensors of tokenized pose pairs (no Lightning here).

* :func:`load_dataset` reads a PoseTrack18-layout folder, or generates (and caches) the embedded
  synthetic scenes when no root is configured.
* :class:`TokenizedPairs` holds every pair of a set of videos and serves whole batches at once
  (``__getitems__``), tokenized (§3.2) in one call per batch, optionally augmented: a DataLoader
  step is a gather and a tensor expression, not a Python loop over pairs.
* :func:`class_balanced_weights` gives the per-pair weights with which a
  ``WeightedRandomSampler`` draws matching and non-matching pairs equally often (A.4).
"""
from __future__ import annotations

import logging
import numpy as np
import torch
from omegaconf import DictConfig

from keytrack.augment import augment_pairs
from keytrack.pairs import PairIndex, sample_pairs
from keytrack.poses import Dataset
from keytrack.tokenize import TokenConfig, tokenize_pairs

log = logging.getLogger("keytrack.data")


def load_dataset(data: DictConfig) -> Dataset:
    """The dataset a ``data`` config names: ``data.root`` (+ ``data.split``), or synthetic scenes."""
    if data.root is None:
        from keytrack.synth import default_dataset

        dataset = default_dataset(num_videos=int(data.synthetic.videos), seed=int(data.synthetic.seed))
        log.info("data: synthetic default (%s)", dataset.report())
    else:
        from keytrack.io import read_dataset

        dataset = read_dataset(str(data.root), split=data.split,
                               default_frame_size=tuple(data.default_frame_size))
        log.info("data: %s split %s (%s)", data.root, data.split, dataset.report())
    if not dataset.videos:
        raise ValueError(f"data: no videos found (root={data.root!r}, split={data.split!r})")
    return dataset


def token_config(cfg: DictConfig) -> TokenConfig:
    """The :class:`TokenConfig` of a full experiment config (``tokens`` + ``pairs.delta``)."""
    t = cfg.tokens
    return TokenConfig(grid=tuple(t.grid), delta=int(cfg.pairs.delta), position=bool(t.position),
                       type=bool(t.type), segment=bool(t.segment),
                       relative_position=bool(t.relative_position))


def balance(pairs: PairIndex, seed: int) -> PairIndex:
    """Keep all pairs of the rarer class and as many, drawn without replacement, of the other."""
    rng = np.random.default_rng(seed)
    idx = [np.flatnonzero(pairs.label == c) for c in (0, 1)]
    n = min(len(i) for i in idx)
    keep = np.sort(np.concatenate([rng.choice(i, n, replace=False) for i in idx]))
    return PairIndex(pairs.current[keep], pairs.previous[keep], pairs.delta[keep], pairs.label[keep])


class TokenizedPairs(torch.utils.data.Dataset):
    """Pose pairs served as token batches: ``{kind: [B, 30]} + label [B]`` (1 = match).

    The pairs' keypoints are kept (``[M, 15, 3]`` each side) and a batch is tokenized when it is
    drawn, in one call: cheap (millions of pairs/s), and it lets training batches be augmented
    (:mod:`keytrack.augment`) with a generator seeded from the run's seed.
    """

    def __init__(self, current: torch.Tensor, previous: torch.Tensor, frame_size: torch.Tensor,
                 delta: torch.Tensor, labels: torch.Tensor, config: TokenConfig,
                 augment: dict | None = None, seed: int = 0):
        self.current, self.previous, self.frame_size, self.delta = current, previous, frame_size, delta
        self.labels = labels
        self.config = config
        self.augment = dict(augment or {})
        self.generator = torch.Generator().manual_seed(int(seed))

    @classmethod
    def build(cls, dataset: Dataset, videos: np.ndarray, cfg: DictConfig, balanced: bool = False,
              seed: int = 0, augment: bool = False) -> "TokenizedPairs":
        table = dataset.subset([dataset.videos[i].name for i in videos]).table()
        pairs = sample_pairs(table, delta=int(cfg.pairs.delta), nearest=cfg.pairs.nearest)
        if balanced and len(pairs):
            pairs = balance(pairs, seed)
        kp = torch.as_tensor(table.keypoints, dtype=torch.float32)
        size = torch.as_tensor(table.frame_size, dtype=torch.float32)
        cur = torch.as_tensor(pairs.current)
        options = {"translate": bool(cfg.augment.translate), "flip": float(cfg.augment.flip)}
        return cls(kp[cur], kp[torch.as_tensor(pairs.previous)], size[cur], torch.as_tensor(pairs.delta),
                   torch.as_tensor(pairs.label, dtype=torch.long), token_config(cfg),
                   augment=options if augment else None, seed=seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        cur, prev, size = self.current[idx], self.previous[idx], self.frame_size[idx]
        if self.augment.get("translate") or self.augment.get("flip", 0) > 0:
            cur, prev = augment_pairs(cur, prev, size, generator=self.generator, **self.augment)
        batch = tokenize_pairs(cur, prev, size, self.delta[idx], self.config)
        batch["label"] = self.labels[idx]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    @property
    def tokens(self) -> dict[str, torch.Tensor]:
        """Every pair tokenized as it is stored (no augmentation)."""
        return tokenize_pairs(self.current, self.previous, self.frame_size, self.delta, self.config)

    def class_counts(self) -> tuple[int, int]:
        ones = int(self.labels.sum())
        return len(self.labels) - ones, ones


def class_balanced_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)``: both classes get equal total weight (A.4)."""
    counts = torch.bincount(labels, minlength=2).clamp(min=1).double()
    return 1.0 / counts[labels]


def identity_collate(batch):
    """The dataset already returns whole batches (``__getitems__``)."""
    return batch
