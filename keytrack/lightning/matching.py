"""LightningModule around any matching network: Pose Entailment as 2-way classification (§3.2, A.4).

``loss.name = bce``: cross entropy on (non-matching, matching), or the matcher's own
``loss(logits, labels)`` when it defines one (the GCN's contrastive loss, :mod:`keytrack.models.gcn`).
``loss.name = listwise``: :func:`keytrack.losses.listwise_loss` over candidate lists (beyond the paper).
AdamW; the learning rate warms up linearly to ``optim.lr`` over ``optim.warmup_fraction`` of all
steps, then decays linearly to 0 (A.4).

Validation logs, on the validation videos:

* the ranking metrics of :mod:`keytrack.ranking` (``val/rank1``, ``val/wrong_beats_true``,
  ``val/new_track``, ``val/accepted``) over every pose and all its candidates, as the tracker
  decides; the best checkpoint is chosen by ``validation.monitor`` (default ``val/rank1``);
* torchmetrics accuracy, F1 and AUROC of the match probability on the class-balanced pairs
  (Table 3's pair accuracy, ``val/acc``);
* ``val/loss``: the training objective (pair cross entropy on the balanced pairs, or the listwise
  loss over every candidate list).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from keytrack.losses import listwise_loss
from keytrack.models.factory import MatcherConfig, build_matcher
from keytrack.ranking import TrackingRanking
from keytrack.settings import LossSettings, OptimSettings, ValidationSettings, as_settings, plain
from keytrack.skeleton import NUM_JOINTS


def warmup_linear_decay(total_steps: int, warmup_fraction: float):
    """LR multiplier: 0 → 1 over the first ``warmup_fraction`` of steps, then 1 → 0 at the end."""
    warmup = max(1, int(round(total_steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class MatchingModule(pl.LightningModule):
    """A matcher trained as a pair classifier (or listwise), validated as the tracker ranks.

    Its arguments are typed (:mod:`keytrack.settings`): ``matcher`` the network to build, ``optim``
    the optimiser and schedule, ``loss`` the objective, ``validation`` the ranking metrics' match
    threshold, ``init_from`` a checkpoint whose matcher weights start the training. They are saved
    as the checkpoint's hyperparameters in plain form, and each may be given so (a mapping of its
    fields), so ``MatchingModule.load_from_checkpoint`` rebuilds the module.
    """

    def __init__(
        self,
        matcher: MatcherConfig,
        optim: OptimSettings,
        loss: LossSettings,
        validation: ValidationSettings,
        init_from: str | None = None,
    ):
        super().__init__()
        matcher, optim = as_settings(MatcherConfig, matcher), as_settings(OptimSettings, optim)
        loss, validation = as_settings(LossSettings, loss), as_settings(ValidationSettings, validation)
        self.save_hyperparameters(
            {
                "matcher": matcher.to_dict(),
                "optim": plain(optim),
                "loss": plain(loss),
                "validation": plain(validation),
                "init_from": init_from,
            }
        )
        self.optim = optim
        self.model = build_matcher(matcher)
        if init_from:  # fine-tuning: start from another run's weights
            from keytrack.models.factory import load_weights

            load_weights(self.model, str(init_from))
        # The joints the training data shows (set in ``setup`` from the training pairs, saved with
        # the weights): tracking hides the others from the network (load_matcher, the scorer).
        self.register_buffer("trained_joints", torch.ones(NUM_JOINTS, dtype=torch.bool))
        metrics = MetricCollection({"acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC()})
        self.val_metrics = metrics.clone(prefix="val/")
        self.val_ranking = TrackingRanking(validation.match_threshold)
        self.objective = loss.name

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        train_set = getattr(datamodule, "train_set", None)
        if stage == "fit" and hasattr(train_set, "joints_seen"):
            self.trained_joints.copy_(train_set.joints_seen())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of a former layout with a message naming the file and
        ``keytrack convert-checkpoint`` (:mod:`keytrack.convert`), not Lightning's list of keys."""
        from keytrack.convert import check_current

        check_current(checkpoint, getattr(self._trainer, "ckpt_path", None))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def match_probability(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch).softmax(-1)[:, 1]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The matcher's ``loss`` when it has one, else cross entropy on the 2-way logits."""
        own = getattr(self.model, "loss", None)
        return own(logits, labels) if callable(own) else F.cross_entropy(logits, labels)

    def objective_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The configured objective: listwise over ``batch["group"]``, else the pair loss."""
        if self.objective == "listwise":
            return listwise_loss(logits, batch["label"], batch["group"])
        return self.loss(logits, batch["label"])

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = self.objective_loss(logits, batch)
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        prob = logits.softmax(-1)[:, 1]
        self.val_ranking.update(prob, batch["label"], batch["query"])
        sel = (
            batch["balanced"].bool()
            if "balanced" in batch
            else torch.ones_like(batch["label"], dtype=torch.bool)
        )
        if self.objective == "listwise" and "group" in batch:
            loss, n = listwise_loss(logits, batch["label"], batch["group"]), len(logits)
        else:
            loss, n = (self.loss(logits[sel], batch["label"][sel]) if sel.any() else None), int(sel.sum())
        if sel.any():
            self.val_metrics.update(prob[sel], batch["label"][sel])
        if loss is not None:
            self.log("val/loss", loss, prog_bar=True, batch_size=max(n, 1), sync_dist=True)

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()
        self.log_dict(
            {f"val/{k}": v for k, v in self.val_ranking.compute().items()}, prog_bar=False, sync_dist=True
        )
        self.val_ranking.reset()

    def configure_optimizers(self):
        o = self.optim
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]  # biases and LayerNorm, as BERT
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr,
        )
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(total, o.warmup_fraction))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
