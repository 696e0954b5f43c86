"""LightningModule of the track-level matcher (beyond the paper; :mod:`keytrack.models.track_transformer`).

Trained with :func:`keytrack.losses.track_listwise_loss`: per list (one pose with the tracks of its
window), softmax cross entropy over the tracks' logits and a "no match" logit fixed at 0. AdamW with
the warm-up and linear decay of :class:`keytrack.lightning.MatchingModule` (A.4).

Validation logs, over every list of the validation videos:

* ``val/rank1``: the share of lists whose argmax over [tracks, no match] is the target (the best
  checkpoint is chosen by ``validation.monitor``, default ``val/rank1``);
* ``val/rank1_continues`` / ``val/rank1_new``: the same over the lists whose pose continues a track
  of the window / starts a new one;
* ``val/loss``: the training objective.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from keytrack.lightning.matching import warmup_linear_decay
from keytrack.losses import track_list_choice, track_listwise_loss
from keytrack.models.track_transformer import TrackTransformer, TrackTransformerConfig
from keytrack.settings import OptimSettings, ValidationSettings, as_settings, plain


class TrackMatchingModule(pl.LightningModule):
    """The track-level matcher trained listwise, validated by rank-1 over lists.

    Typed arguments (:mod:`keytrack.settings`): ``model`` the network's config, ``optim`` the
    optimiser and schedule, ``validation`` the monitored metric. Saved as plain hyperparameters, so
    ``TrackMatchingModule.load_from_checkpoint`` rebuilds it; tracking needs only plain torch
    (:func:`keytrack.models.track_transformer.load_track_model`).
    """

    def __init__(self, model: TrackTransformerConfig, optim: OptimSettings, validation: ValidationSettings):
        super().__init__()
        model = as_settings(TrackTransformerConfig, model)
        optim, validation = as_settings(OptimSettings, optim), as_settings(ValidationSettings, validation)
        self.save_hyperparameters(
            {"model": plain(model), "optim": plain(optim), "validation": plain(validation)}
        )
        self.optim = optim
        self.model = TrackTransformer(model)
        self.val_rank1 = MeanMetric()
        self.val_rank1_continues = MeanMetric()
        self.val_rank1_new = MeanMetric()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = track_listwise_loss(logits, batch["group"], batch["target"])
        rank1 = (track_list_choice(logits, batch["group"], len(batch["target"])) == batch["target"]).float()
        self.log_dict(
            {"train/loss": loss, "train/rank1": rank1.mean()}, prog_bar=True, batch_size=len(batch["target"])
        )
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        target = batch["target"]
        loss = track_listwise_loss(logits, batch["group"], target)
        hit = (track_list_choice(logits, batch["group"], len(target)) == target).float()
        self.val_rank1.update(hit)
        new = target < 0
        if (~new).any():
            self.val_rank1_continues.update(hit[~new])
        if new.any():
            self.val_rank1_new.update(hit[new])
        self.log("val/loss", loss, prog_bar=True, batch_size=len(target), sync_dist=True)

    def on_validation_epoch_end(self):
        for name in ("rank1", "rank1_continues", "rank1_new"):
            metric = getattr(self, f"val_{name}")
            if metric.update_count:
                self.log(f"val/{name}", metric.compute(), prog_bar=name == "rank1", sync_dist=True)
            metric.reset()

    def configure_optimizers(self):
        o = self.optim
        decay = [p for p in self.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.ndim < 2]  # biases and LayerNorm, as BERT
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr,
        )
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(total, o.warmup_fraction))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
