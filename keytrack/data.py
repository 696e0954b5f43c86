"""From a data config to tensors of tokenized pose pairs (no Lightning here).

* :func:`load_dataset` reads a PoseTrack18-layout folder, or generates (and caches) the embedded
  synthetic scenes when no root is configured.
* :class:`TokenizedPairs` (alias :data:`EncodedPairs`) holds every pair of a set of videos and
  serves whole batches at once (``__getitems__``), encoded for the configured matcher in one call
  per batch (:mod:`keytrack.encoders`: tokens (§3.2) for the transformer, images for the CNNs,
  joints for the GCN), optionally augmented: a DataLoader step is a gather and a tensor
  expression, not a Python loop over pairs. For the CNN on image crops, the crops of every pose
  are cut once (:func:`keytrack.frames.pose_crops`) and a batch gathers its pairs' two crops by
  pose index.
* :func:`class_balanced_weights` gives the per-pair weights with which a
  ``WeightedRandomSampler`` draws matching and non-matching pairs equally often (A.4).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from omegaconf import DictConfig

from keytrack.augment import augment_pairs, is_active
from keytrack.encoders import (
    PairEncoder,
    TokenEncoder,
    pair_encoder,  # noqa: F401 (re-exported)
)
from keytrack.pairs import PairIndex, moved_previous, sample_pairs
from keytrack.poses import Dataset
from keytrack.settings import AugmentSettings, DataSettings, PairSettings
from keytrack.tokenize import TokenConfig

log = logging.getLogger("keytrack.data")


def load_dataset(data: DataSettings | DictConfig) -> Dataset:
    """The dataset the ``data`` settings name (typed, or the config section): ``data.root``
    (+ ``data.split``), or synthetic scenes."""
    if data.root is None:
        from keytrack.synth import default_dataset

        dataset = default_dataset(num_videos=int(data.synthetic.videos), seed=int(data.synthetic.seed))
        log.info("data: synthetic default (%s)", dataset.report())
    else:
        from keytrack.io import read_dataset

        dataset = read_dataset(
            str(data.root), split=data.split, default_frame_size=tuple(data.default_frame_size)
        )
        log.info("data: %s split %s (%s)", data.root, data.split, dataset.report())
    if not dataset.videos:
        raise ValueError(f"data: no videos found (root={data.root!r}, split={data.split!r})")
    return dataset


def with_frame_strides(dataset: Dataset, strides, all_offsets: bool = True) -> Dataset:
    """``dataset`` at several frame rates: for each stride ``k``, the frames whose ``index % k == o``
    renumbered ``index // k`` as a video of their own (``<name>@<k>+<o>``), for every offset ``o < k``
    (``all_offsets``) or ``o = 0`` only; stride 1 is the dataset itself. Pairs of a ``k``-strided video
    are ``Δ`` timesteps of ``k`` frames apart, as the tracker sees a video tracked at ``--stride k``
    (:func:`keytrack.tracking.subsample` keeps offset 0)."""
    import dataclasses

    strides = sorted({int(k) for k in strides})
    if not strides or strides[0] < 1:
        raise ValueError(f"pairs.strides must be integers >= 1, got {list(strides)}")
    if strides == [1]:
        return dataset
    videos = []
    for k in strides:
        for v in dataset.videos:
            for o in range(k if all_offsets else 1):
                frames = [dataclasses.replace(f, index=f.index // k) for f in v.frames if f.index % k == o]
                if frames:
                    name = v.name if k == 1 else f"{v.name}@{k}+{o}"
                    videos.append(dataclasses.replace(v, name=name, frames=frames))
    return Dataset(videos, dict(dataset.skipped))


def balance_index(pairs: PairIndex, seed: int) -> np.ndarray:
    """Sorted indices of all pairs of the rarer class and as many, drawn without replacement, of the other."""
    rng = np.random.default_rng(seed)
    idx = [np.flatnonzero(pairs.label == c) for c in (0, 1)]
    n = min(len(i) for i in idx)
    return np.sort(np.concatenate([rng.choice(i, n, replace=False) for i in idx]))


def balance(pairs: PairIndex, seed: int) -> PairIndex:
    """Keep all pairs of the rarer class and as many, drawn without replacement, of the other."""
    return pairs.select(balance_index(pairs, seed))


#: A joint visible in fewer of the training poses than this is one the matcher was not trained on.
MIN_JOINT_SHARE = 0.01


class TokenizedPairs(torch.utils.data.Dataset):
    """Pose pairs served as encoded batches: the encoder's tensors ``+ label [B]`` (1 = match).

    The pairs' keypoints are kept (``[M, 15, 3]`` each side) and a batch is encoded when it is
    drawn, in one call of ``encoder`` (:mod:`keytrack.encoders`; a :class:`TokenConfig` means the
    transformer's tokens, ``{kind: [B, 30]}``): cheap (millions of pairs/s for tokens), and it lets
    training batches be augmented (:mod:`keytrack.augment`) with a generator seeded from the run's
    seed and, per epoch, by :meth:`set_epoch` (so a resumed run augments epoch k as an uninterrupted
    one does). Augmentation moves keypoints only; image crops are served as cut from the frames.

    For an encoder that ``needs_crops``, ``crops`` holds ``[N, 3, h, w]`` uint8 crops of the
    poses and ``crop_index`` ``[M, 2]`` the rows of each pair's current and earlier pose in it.
    """

    def __init__(
        self,
        current: torch.Tensor,
        previous: torch.Tensor,
        frame_size: torch.Tensor,
        delta: torch.Tensor,
        labels: torch.Tensor,
        config: TokenConfig | PairEncoder,
        augment: dict | None = None,
        seed: int = 0,
        crops: torch.Tensor | None = None,
        crop_index: torch.Tensor | None = None,
        query: torch.Tensor | None = None,
        balanced: torch.Tensor | None = None,
    ):
        self.current, self.previous, self.frame_size, self.delta = current, previous, frame_size, delta
        self.labels = labels
        m = len(labels)
        # ``query``: one id per current pose (its table row), so pairs sharing it are one pose's
        # candidates; ``balanced``: the class-balanced subset the pair metrics are computed on.
        self.query = torch.arange(m) if query is None else torch.as_tensor(query, dtype=torch.long)
        self.balanced = torch.ones(m, dtype=torch.bool) if balanced is None else torch.as_tensor(balanced)
        self.encoder: PairEncoder = TokenEncoder(config) if isinstance(config, TokenConfig) else config
        self.augment = dict(augment or {})
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.crops, self.crop_index = crops, crop_index
        if self.encoder.needs_crops:
            m = len(labels)
            if crops is None or crop_index is None or tuple(crop_index.shape) != (m, 2):
                raise ValueError(
                    f"TokenizedPairs: the {type(self.encoder).__name__} needs crops "
                    f"[N, 3, h, w] and crop_index [{m}, 2]"
                )

    @property
    def config(self) -> TokenConfig | None:
        """The token config of a transformer's pairs (None for other matchers)."""
        return getattr(self.encoder, "config", None)

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        videos: np.ndarray,
        cfg: DictConfig,
        balanced: bool = False,
        seed: int = 0,
        augment: bool = False,
        frames=None,
        strides=(1,),
        all_offsets: bool = True,
    ) -> "TokenizedPairs":
        """:meth:`from_settings` with the pair encoder and the ``pairs`` / ``augment`` settings of the
        experiment config ``cfg`` (``augment=True`` applies its augmentation); ``frames`` defaults to
        :func:`keytrack.frames.frame_source` of ``cfg.data`` when the encoder needs crops."""
        from keytrack.settings import augment_settings, pair_settings

        encoder = pair_encoder(cfg)
        if frames is None and encoder.needs_crops:
            from keytrack.frames import frame_source

            frames = frame_source(cfg.data)
        return cls.from_settings(
            dataset,
            videos,
            encoder,
            pair_settings(cfg.pairs),
            augment_settings(cfg.augment) if augment else None,
            balanced=balanced,
            seed=seed,
            frames=frames,
            strides=strides,
            all_offsets=all_offsets,
        )

    @classmethod
    def from_settings(
        cls,
        dataset: Dataset,
        videos: np.ndarray,
        encoder: PairEncoder,
        pairs: PairSettings,
        augment: AugmentSettings | None = None,
        *,
        balanced: bool | str = False,
        seed: int = 0,
        frames=None,
        strides=None,
        all_offsets: bool = True,
    ) -> "TokenizedPairs":
        """The pairs of ``videos`` (indices into ``dataset.videos``), encoded by ``encoder``.

        ``pairs`` picks them (δ, the nearest candidates, the motion); ``strides`` (default
        ``pairs.strides``): the videos are also taken at these frame strides (:func:`with_frame_strides`).
        ``pairs.motion = "velocity"``: each earlier pose is moved by its track's velocity times
        ``Δ`` (:func:`keytrack.pairs.moved_previous`), as the tracker shows it with that motion.
        ``augment``: the augmentation of batches (None: none). ``balanced``: keep the class-balanced
        subset only, or ``"mask"``: keep every pair and mark that subset. ``frames`` (a
        :class:`keytrack.frames.FrameSource`) gives the images the crop matcher cuts its crops from.
        """
        strides = tuple(pairs.strides if strides is None else strides)
        subset = dataset.subset([dataset.videos[i].name for i in videos])
        if strides != (1,):
            if encoder.needs_crops:
                raise ValueError(
                    "pairs.strides: the crop matcher cuts crops by frame index; train it at stride 1"
                )
            subset = with_frame_strides(subset, strides, all_offsets)
        table = subset.table()
        index = sample_pairs(table, delta=pairs.delta, nearest=pairs.nearest)
        in_balanced = None
        if balanced == "mask" and len(index):  # keep every pair, mark the balanced subset
            in_balanced = np.zeros(len(index), bool)
            in_balanced[balance_index(index, seed)] = True
        elif balanced and len(index):
            index = index.select(balance_index(index, seed))
        crops = crop_index = None
        if encoder.needs_crops:
            if frames is None:
                raise ValueError(
                    f"TokenizedPairs: the {type(encoder).__name__} cuts crops from frames: give frames"
                )
            crops, crop_index = _pair_crops(subset, index, encoder, frames)
        kp = torch.as_tensor(table.keypoints, dtype=torch.float32)
        size = torch.as_tensor(table.frame_size, dtype=torch.float32)
        cur = torch.as_tensor(index.current)
        previous = (
            torch.as_tensor(moved_previous(table, index, pairs.delta), dtype=torch.float32)
            if pairs.motion == "velocity"
            else kp[torch.as_tensor(index.previous)]
        )
        return cls(
            kp[cur],
            previous,
            size[cur],
            torch.as_tensor(index.delta),
            torch.as_tensor(index.label, dtype=torch.long),
            encoder,
            augment=None if augment is None else augment.pair_options(),
            seed=seed,
            crops=crops,
            crop_index=crop_index,
            query=torch.as_tensor(index.current),
            balanced=None if in_balanced is None else torch.as_tensor(in_balanced),
        )

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation generator from ``(seed, epoch)``."""
        self.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        return len(self.labels)

    def _encode(self, idx: torch.Tensor, augment: bool) -> dict[str, torch.Tensor]:
        cur, prev, size = self.current[idx], self.previous[idx], self.frame_size[idx]
        if augment and is_active(self.augment):
            cur, prev = augment_pairs(cur, prev, size, generator=self.generator, **self.augment)
        crops = None
        if self.encoder.needs_crops:
            rows = self.crop_index[idx]
            crops = (self.crops[rows[:, 0]], self.crops[rows[:, 1]])
        return self.encoder(cur, prev, size, self.delta[idx], crops)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.batch(torch.as_tensor(indices, dtype=torch.long))

    def batch(self, idx: torch.Tensor, augment: bool = True) -> dict[str, torch.Tensor]:
        """The encoded pairs ``idx`` with ``label``, ``query`` (current pose id), ``delta`` and
        ``balanced`` (in the class-balanced subset) beside the encoder's tensors."""
        batch = self._encode(idx, augment=augment)
        batch["label"] = self.labels[idx]
        batch["query"] = self.query[idx]
        batch["delta"] = self.delta[idx]
        batch["balanced"] = self.balanced[idx]
        return batch

    def groups(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start, length)`` of each candidate list: the pairs of one current pose at one ``Δ``
        (pairs are sorted by ``(current, delta, previous)``, so each list is one contiguous run)."""
        m = len(self.labels)
        if m == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        new = torch.ones(m, dtype=torch.bool)
        new[1:] = (self.query[1:] != self.query[:-1]) | (self.delta[1:] != self.delta[:-1])
        start = new.nonzero().flatten()
        length = torch.diff(start, append=torch.tensor([m]))
        return start, length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    @property
    def tokens(self) -> dict[str, torch.Tensor]:
        """Every pair encoded as it is stored (no augmentation)."""
        return self._encode(torch.arange(len(self.labels)), augment=False)

    def joints_seen(self, min_share: float = None) -> torch.Tensor:
        """``[15]`` bool: the joints visible in at least ``min_share`` (default
        :data:`MIN_JOINT_SHARE`) of the pairs' poses, both sides counted. A matcher learns nothing
        about a joint its training data never shows (Bonn never annotates the nose), so its
        checkpoint keeps this record and tracking hides the other joints from it
        (:class:`keytrack.tracking.PoseEntailmentScorer`)."""
        share = MIN_JOINT_SHARE if min_share is None else float(min_share)
        if len(self.labels) == 0:
            return torch.ones(self.current.shape[1], dtype=torch.bool)
        visible = torch.cat([self.current[..., 2], self.previous[..., 2]]) > 0
        return visible.float().mean(0) >= share

    def class_counts(self) -> tuple[int, int]:
        ones = int(self.labels.sum())
        return len(self.labels) - ones, ones


#: The same class under a name that does not suggest tokens.
EncodedPairs = TokenizedPairs


class CandidateLists(torch.utils.data.Dataset):
    """The pairs of a :class:`TokenizedPairs` grouped into candidate lists, one item per list.

    A list is one pose of frame ``t`` with every candidate of frame ``t - Δ`` (:meth:`TokenizedPairs.groups`):
    what the listwise loss (:func:`keytrack.losses.listwise_loss`) ranks, and what the tracker chooses
    among. A batch of list indices is expanded to their pairs and encoded in one call; ``group``
    numbers the lists of the batch ``0..B-1``.

    ``hide_true`` (training, ``loss.hide_true``): each drawn list that holds the true continuation
    loses it with this probability, so its target becomes "no match": what the tracker must decide
    when the detector missed the person in the earlier frame or the pose is a false positive. The
    draw comes from the pairs' augmentation generator (seeded per epoch, so a resumed run hides
    the same ones). A list left with no candidate is dropped from the batch.
    """

    def __init__(self, pairs: TokenizedPairs, hide_true: float = 0.0):
        if not 0.0 <= float(hide_true) <= 1.0:
            raise ValueError(f"loss.hide_true must lie in [0, 1], got {hide_true}")
        self.pairs = pairs
        self.hide_true = float(hide_true)
        self.start, self.length = pairs.groups()

    def __len__(self) -> int:
        return len(self.start)

    def expand(self, lists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pair indices, group)`` of the candidate lists ``lists``."""
        lengths = self.length[lists]
        group = torch.repeat_interleave(torch.arange(len(lists)), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        idx = self.start[lists][group] + (torch.arange(int(lengths.sum())) - first[group])
        return idx, group

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx, group = self.expand(torch.as_tensor(indices, dtype=torch.long))
        if self.hide_true > 0 and len(idx):
            hide = torch.rand(len(indices), generator=self.pairs.generator) < self.hide_true
            keep = ~(hide[group] & (self.pairs.labels[idx] > 0))
            idx, group = idx[keep], torch.unique_consecutive(group[keep], return_inverse=True)[1]
        batch = self.pairs.batch(idx)
        batch["group"] = group
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])


class ListBatches(torch.utils.data.BatchSampler):
    """The candidate lists ``sampler`` yields, consecutive ones batched up to ``batch_size`` *pairs*
    (a longer list alone): validation goes through every list once, in order, without cutting one
    across batches. A ``BatchSampler`` (``sampler``, ``batch_size``, ``drop_last``), so Lightning can
    give each DDP process its share of the lists (the ranking metric gathers them all)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        super().__init__(sampler, int(batch_size), drop_last)
        source = getattr(sampler, "data_source", None) or getattr(sampler, "dataset", None)
        if not isinstance(source, CandidateLists):
            raise TypeError("ListBatches: the sampler must draw from a CandidateLists dataset")
        self.lengths = source.length.tolist()

    def __iter__(self):
        current, total = [], 0
        for i in self.sampler:
            n = self.lengths[int(i)]
            if current and total + n > self.batch_size:
                yield current
                current, total = [], 0
            current.append(int(i))
            total += n
        if current:
            yield current

    def __len__(self) -> int:
        return sum(1 for _ in self.__iter__())


def _pair_crops(
    dataset: Dataset, pairs: PairIndex, encoder: PairEncoder, source
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops ``[N, 3, h, w]`` of the poses of ``dataset.table()`` used by ``pairs``, cut from the
    frames of ``source``, and ``[M, 2]`` rows into them of each pair's current and earlier pose (crops
    of poses in no pair are dropped)."""
    from keytrack.frames import pose_crops
    from keytrack.synth.cache import cache_root

    size = tuple(int(r) for r in encoder.resolution)
    # Cut once per (poses, frames, source, size) and kept under the keytrack cache (content-keyed).
    crops = pose_crops(dataset, source, size=size, cache_dir=cache_root() / "crops")
    used, inverse = np.unique(np.concatenate([pairs.current, pairs.previous]), return_inverse=True)
    crops = torch.as_tensor(crops)[torch.as_tensor(used, dtype=torch.long)]
    index = torch.as_tensor(inverse.reshape(2, -1).T.copy(), dtype=torch.long)
    return crops, index


def class_balanced_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)``: both classes get equal total weight (A.4)."""
    counts = torch.bincount(labels, minlength=2).clamp(min=1).double()
    return 1.0 / counts[labels]


def identity_collate(batch):
    """The dataset already returns whole batches (``__getitems__``)."""
    return batch


# -- samplers whose order depends only on (seed, epoch) -----------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of a run seeded ``seed`` (independent streams per epoch)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class _EpochSeeded:
    """Mixin: the sampler's generator is reseeded from ``(seed, epoch)`` at the start of each pass.

    Lightning calls ``set_epoch(epoch)`` before every training epoch, so epoch ``k`` draws the same
    samples whether the run got there in one go or resumed from a checkpoint (the interrupted
    epoch is replayed exactly). Without ``set_epoch`` calls (a sampler wrapped for DDP) the passes
    count up from 0.
    """

    def _init_epochs(self, seed: int) -> None:
        self.seed, self.epoch = int(seed), 0
        self.generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))
        self.epoch += 1  # the next pass, unless set_epoch says otherwise
        return super().__iter__()


class EpochRandomSampler(_EpochSeeded, torch.utils.data.RandomSampler):
    def __init__(self, data_source, *, num_samples: int, seed: int):
        super().__init__(data_source, replacement=True, num_samples=num_samples)
        self._init_epochs(seed)


class EpochWeightedRandomSampler(_EpochSeeded, torch.utils.data.WeightedRandomSampler):
    def __init__(self, weights, *, num_samples: int, seed: int):
        super().__init__(weights, num_samples=num_samples, replacement=True)
        self._init_epochs(seed)
