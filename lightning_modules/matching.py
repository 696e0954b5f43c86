"""LightningModule around any matching network: Pose Entailment as 2-way classification (§3.2, A.4).

Cross entropy on (non-matching, matching), or the matcher's own ``loss(logits, labels)`` when it
defines one (the GCN's contrastive loss, :mod:`keytrack.models.gcn`); AdamW; the learning rate warms up linearly to
``optim.lr`` over ``optim.warmup_fraction`` of all steps, then decays linearly to 0 (A.4).
Validation logs torchmetrics accuracy, F1 and AUROC of the match probability.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from keytrack.models.factory import build_matcher


def warmup_linear_decay(total_steps: int, warmup_fraction: float):
    """LR multiplier: 0 → 1 over the first ``warmup_fraction`` of steps, then 1 → 0 at the end."""
    warmup = max(1, int(round(total_steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class MatchingModule(pl.LightningModule):
    def __init__(self, cfg: DictConfig | dict):
        super().__init__()
        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True)})
        self.cfg = cfg
        self.model = build_matcher(cfg)
        metrics = MetricCollection({"acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC()})
        self.val_metrics = metrics.clone(prefix="val/")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def match_probability(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch).softmax(-1)[:, 1]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The matcher's ``loss`` when it has one, else cross entropy on the 2-way logits."""
        own = getattr(self.model, "loss", None)
        return own(logits, labels) if callable(own) else F.cross_entropy(logits, labels)

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = self.loss(logits, batch["label"])
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        loss = self.loss(logits, batch["label"])
        self.val_metrics.update(logits.softmax(-1)[:, 1], batch["label"])
        self.log("val/loss", loss, prog_bar=True, batch_size=len(logits), sync_dist=True)

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        o = self.cfg.optim
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]   # biases and LayerNorm, as BERT
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": float(o.weight_decay)},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=float(o.lr))
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(total, float(o.warmup_fraction)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
