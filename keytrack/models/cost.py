"""Parameters and FLOPs per pose pair of every matcher (Table 6, §5.2, A.5).

    keytrack cost                                  # every matcher experiment, runs/cost/ (make cost)
    keytrack cost --out results/cost               # the committed table
    keytrack cost --experiments default cnn_keypoints

Table 6 of the paper compares the cost of the Transformer Matching Network with its components
(embeddings, the four encoder layers, pooler, classifier) and with the learned baselines (GCN,
optical flow). This module counts both numbers from the models themselves rather than by hand:

* **Parameters**: ``sum(p.numel())`` of each module (trainable or not), in millions.
* **FLOPs per pair**: one pose pair (batch of 1) goes through the model's forward under
  :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the matrix products and
  convolutions (``mm``, ``addmm``, ``bmm``, ``convolution``, ...) with the usual convention of
  2 FLOPs per multiply-accumulate. Attention runs with PyTorch's *math* backend while counting,
  so ``QKᵀ`` and the weighted sum of ``V`` are matrix products the counter sees (the CPU's fused
  kernel is invisible to it). Element-wise work (LayerNorm, GELU, softmax, embedding look-ups,
  pooling, BatchNorm) is not counted, as in most published FLOP figures. MACs are FLOPs / 2.

The paper's figures are given beside ours. Its "MFLOPs" behave like MACs of the linear layers:
the pooler's 0.015 M is exactly 128 × 128 multiply-accumulates of one token, and the encoder's
5.84 M is close to six 128 × 128 projections (Q, K, V, attention output, intermediate, output)
of 15 tokens in 4 layers (5.90 M); a pair has 30 tokens, which gives 11.8 M MACs for those
projections plus the attention products. The table therefore lists MACs as well; the paper does
not say how it counted. Since the pooler reads only the first token, our last encoder layer
computes that token alone (its keys and values still come from all 30 tokens), so the count is
what runs: 21.2 M FLOPs for the paper's model (25.5 M when every layer computed all 30 tokens).

Every matcher is built from its experiment config (:func:`keytrack.models.factory.build_matcher`)
and fed an example pair by its own encoder, so the counts follow the configs: change
``model.resolution`` in ``experiments/cnn_keypoints.yaml`` and the table follows.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from typing import Sequence

from keytrack.reference import paper_results
from keytrack.tables import Column, write_table

log = logging.getLogger("keytrack.cost")

ABLATION = "cost"

#: Matcher experiments of Table 6 (``experiments/<name>.yaml``) and the paper's row for each.
MATCHERS: dict[str, str | None] = {
    "default": "matching_network",
    "improved": None,
    "cnn_keypoints": None,
    "cnn_crops": None,
    "gcn": "gcn",
}
#: The transformer's components (top-level modules) and Table 6's names for them.
TRANSFORMER_COMPONENTS: dict[str, tuple[str, str]] = {
    "embeddings": ("Embeddings", "embeddings"),
    "encoder": ("Encoder layers (all)", "transformers_x4"),
    "pooler": ("Pooler", "pooler"),
    "classifier": ("Classifier", "classifier"),
}


def example_batch(cfg, pairs: int = 1) -> dict:
    """``pairs`` encoded pose pairs for the matcher of ``cfg``, as its encoder makes them (crops for
    the crop CNN are random pixels: the cost does not depend on them)."""
    import torch

    from keytrack.encoders import pair_encoder

    g = torch.Generator().manual_seed(0)
    size = torch.tensor([[1920.0, 1080.0]]).expand(pairs, 2)
    kp = torch.rand(2, pairs, 15, 3, generator=g)
    kp[..., 0] *= 1920.0
    kp[..., 1] *= 1080.0
    kp[..., 2] = 1.0
    delta = torch.ones(pairs, dtype=torch.long)
    crops = None
    if str(cfg.model.name) == "cnn_crops":
        w, h = (int(v) for v in cfg.model.resolution)
        crops = tuple(torch.randint(0, 256, (2, pairs, 3, h, w), dtype=torch.uint8, generator=g))
    return pair_encoder(cfg)(kp[0], kp[1], size, delta, crops=crops)


def count(model, batch) -> dict:
    """``{"params": {module: n}, "flops": {module: n}}`` for the top-level children and ``""``."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    counter = FlopCounterMode(display=False, depth=3)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        model(batch)
    root = type(model).__name__
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    flops: dict[str, int] = defaultdict(int)
    flops[""] = counts.get(root, 0)
    for child, _ in model.named_children():
        prefix = f"{root}.{child}"
        if prefix in counts:  # a module that is called
            flops[child] = counts[prefix]
        else:  # a container (ModuleList): its members
            flops[child] = sum(
                n for name, n in counts.items() if name.startswith(prefix + ".") and name.count(".") == 2
            )
    params = {"": sum(p.numel() for p in model.parameters())}
    for child, module in model.named_children():
        params[child] = sum(p.numel() for p in module.parameters())
    return {"params": params, "flops": dict(flops)}


def per_pair(experiment: str, overrides: Sequence[str] = ()) -> dict:
    """``{"params", "flops"}`` of the whole matcher of ``experiment`` with ``overrides``, per pose pair."""
    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config([f"experiment={experiment}", *overrides])
    c = count(build_matcher(matcher_config(cfg)), example_batch(cfg))
    return {"params": c["params"][""], "flops": c["flops"][""]}


def rows_for(experiment: str, paper: dict, overrides: Sequence[str] = ()) -> list[dict]:
    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config([f"experiment={experiment}", *overrides])
    model = build_matcher(matcher_config(cfg))
    c = count(model, example_batch(cfg))
    name = str(cfg.model.name)
    label = {"transformer": "Transformer Matching Network"}.get(name, name)
    if name == "transformer" and experiment != "default":
        label = f"{label} ({experiment})"
    if name.startswith("cnn_"):
        w, h = cfg.model.resolution
        label = f"{label} ({w}×{h})"

    def row(component: str, module: str, paper_key: str | None) -> dict:
        p = paper.get(paper_key, {}) if paper_key else {}
        flops = c["flops"].get(module, 0)
        return {
            "matcher": label,
            "component": component,
            "experiment": experiment,
            "params_m": c["params"].get(module, 0) / 1e6,
            "paper_params_m": p.get("params_m"),
            "mflops": flops / 1e6,
            "mmacs": flops / 2e6,
            "paper_mflops": p.get("mflops"),
        }

    out = [row("total", "", MATCHERS.get(experiment))]
    if name == "transformer":
        layers = int(cfg.model.layers)
        for module, (component, paper_key) in TRANSFORMER_COMPONENTS.items():
            if module == "encoder":
                component = f"Encoder layers (×{layers})"
            out.append(row(component, module, paper_key))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiments",
        nargs="+",
        default=list(MATCHERS),
        help="matcher experiments (experiments/<name>.yaml; default: %(default)s)",
    )
    parser.add_argument(
        "--resolutions",
        nargs="+",
        default=["24x18", "96x72"],
        metavar="WxH",
        help="input resolutions of the CNNs (model.resolution; default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=f"runs/{ABLATION}",
        help="results folder (default: %(default)s; the committed table is results/cost, written with --out)",
    )


def write_cost_table(args: argparse.Namespace, failures: list | None = None) -> list[dict]:
    """Count every matcher of ``args.experiments``, write the table to ``args.out`` and return its rows;
    a matcher that cannot be counted gets a ``failed: ...`` row, and ``(experiment, error)`` is added
    to ``failures`` when given."""
    paper = paper_results()["cost"]
    rows: list[dict] = []
    variants = []
    for experiment in args.experiments:
        if experiment.startswith("cnn_"):
            variants += [
                (experiment, [f"model.resolution=[{r.lower().replace('x', ',')}]"]) for r in args.resolutions
            ]
        else:
            variants.append((experiment, []))
    for experiment, overrides in variants:
        try:
            rows.extend(rows_for(experiment, paper, overrides))
        except Exception as err:  # one broken matcher does not hide the others
            log.error("%s: %s", experiment, err)
            if failures is not None:
                failures.append((experiment, err))
            rows.append(
                {
                    "matcher": experiment,
                    "component": f"failed: {type(err).__name__}: {err}",
                    "experiment": experiment,
                }
            )
    for key in ("optical_flow",):
        p = paper.get(key, {})
        rows.append(
            {
                "matcher": "Optical flow (paper only)",
                "component": "total",
                "paper_params_m": p.get("params_m"),
                "paper_mflops": p.get("mflops"),
            }
        )
    columns = [
        Column("matcher", "Matcher"),
        Column("component", "Component"),
        Column("params_m", "Params (M)", 4),
        Column("paper_params_m", "Params (M, paper)", 3),
        Column("mflops", "MFLOPs / pair", 2),
        Column("mmacs", "MMACs / pair", 2),
        Column("paper_mflops", "MFLOPs (paper)", 3),
        Column("experiment", "Experiment"),
    ]
    notes = [
        "Counted from the models: parameters with numel(); FLOPs of one pose pair (batch 1) with "
        "torch.utils.flop_counter.FlopCounterMode (matrix products and convolutions, 2 FLOPs per "
        "multiply-accumulate; attention through the math backend so its products are counted; "
        "element-wise ops, normalisation and look-ups not counted). MMACs = MFLOPs / 2.",
        "Paper: Table 6. Its MFLOPs match MACs of the linear layers (pooler: 128×128 = 0.016 M), and its "
        "encoder figure matches 15 tokens rather than a pair's 30 (see keytrack/models/cost.py).",
        "The paper's GCN and optical-flow rows are its own baselines (LightTrack's GCN, FlowNet2-S); "
        "our GCN row is our implementation of LightTrack's matcher.",
    ]
    md, csv = write_table(
        rows, args.out, columns=columns, title="Cost of the matchers (Table 6, §5.2)", notes=notes, digits=3
    )
    print(md.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", md, csv)
    return rows


def run(args: argparse.Namespace) -> int:
    """``keytrack cost``: the table. A matcher that could not be counted ends it with ``keytrack cost:
    error: could not count <names> (see <out>/table.md)`` on stderr and status 2 when each failure
    is bad input (an unknown experiment, a config error), else 1."""
    import sys
    from pathlib import Path

    from keytrack.errors import USER_ERRORS

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    failures: list = []
    write_cost_table(args, failures)
    if not failures:
        return 0
    names = ", ".join(dict.fromkeys(name for name, _ in failures))
    print(
        f"keytrack cost: error: could not count {names} (see {Path(args.out) / 'table.md'})", file=sys.stderr
    )
    return 2 if all(isinstance(err, USER_ERRORS) for _, err in failures) else 1
