"""Table 6's counter (keytrack.models.cost): FLOPs and parameters counted from the models."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from keytrack.models import cost


class _TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(8, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.head = nn.Linear(4, 2)

    def forward(self, batch):
        x = self.first(batch["x"])
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_count_matches_hand_computed_flops_and_params():
    c = cost.count(_TwoLayers(), {"x": torch.zeros(1, 8)})
    # 2 FLOPs per multiply-accumulate: 8·4 + 2·(4·4) + 4·2 MACs.
    assert c["flops"][""] == 2 * (8 * 4 + 2 * 16 + 4 * 2)
    assert c["flops"]["first"] == 2 * 32
    assert c["flops"]["blocks"] == 2 * 32  # a ModuleList: the sum of its members
    assert c["flops"]["head"] == 2 * 8
    assert c["params"][""] == (8 * 4 + 4) + 2 * (16 + 4) + (4 * 2 + 2)
    assert c["params"]["blocks"] == 40


def test_transformer_components_add_up_and_attention_is_counted():
    from keytrack.config import load_config

    rows = cost.rows_for("default", cost.paper_results()["cost"])
    total = rows[0]
    parts = {r["component"]: r for r in rows[1:]}
    assert total["params_m"] * 1e6 == 473_218
    assert abs(sum(r["params_m"] for r in parts.values()) - total["params_m"]) < 1e-9
    assert abs(sum(r["mflops"] for r in parts.values()) - total["mflops"]) < 1e-9
    cfg = load_config(["experiment=default"])
    h, i, n, layers = int(cfg.model.hidden), int(cfg.model.intermediate), 30, int(cfg.model.layers)
    projections = n * (4 * h * h + 2 * h * i)  # Q, K, V, output; intermediate, output
    attention = 2 * n * n * h  # QKᵀ and the weighted sum of V
    # The last layer computes the pooled first token alone: K and V of all n tokens, the rest of one.
    last = n * 2 * h * h + (2 * h * h + 2 * h * i) + 2 * n * h
    assert parts["Encoder layers (×4)"]["mmacs"] * 1e6 == (layers - 1) * (projections + attention) + last
    assert total["paper_params_m"] == 0.41 and total["paper_mflops"] == 6.2


def test_cnn_cost_grows_with_resolution_and_the_table_is_written(tmp_path):
    args = argparse.Namespace(
        experiments=["cnn_keypoints", "gcn"], resolutions=["12x9", "24x18"], out=str(tmp_path)
    )
    rows = cost.write_cost_table(args)
    cnn = [r for r in rows if r.get("experiment") == "cnn_keypoints"]
    assert [r["matcher"] for r in cnn] == ["cnn_keypoints (12×9)", "cnn_keypoints (24×18)"]
    assert cnn[0]["mflops"] < cnn[1]["mflops"]
    gcn = next(r for r in rows if r.get("experiment") == "gcn")
    assert gcn["paper_params_m"] == 0.1 and 0 < gcn["mflops"] < cnn[0]["mflops"]
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert "| Optical flow (paper only) | total |" in table
    assert (tmp_path / "table.csv").read_text(encoding="utf-8").startswith("Matcher,Component,Params (M)")
