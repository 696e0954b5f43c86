"""The Transformer Matching Network (A.5, Table 5, Table 6)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from keytrack.models import TransformerConfig, TransformerMatchingNetwork, parameter_breakdown
from keytrack.models.registry import transformer_config
from keytrack.tokenize import TokenConfig

SEQ = 30


def _tokens(
    m: int, config: TransformerConfig = TransformerConfig(), seed: int = 0, visible: float = 0.8
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    segment = torch.cat(
        [
            torch.zeros(m, 15, dtype=torch.long),
            torch.randint(1, config.num_segments, (m, 1), generator=g).expand(m, 15),
        ],
        1,
    )
    return {
        "position": torch.randint(0, config.num_positions, (m, SEQ), generator=g),
        "type": torch.arange(15).repeat(2).expand(m, -1),
        "segment": segment,
        "relative": torch.randint(0, config.num_positions, (m, SEQ), generator=g),
        "mask": torch.rand(m, SEQ, generator=g) < visible,
    }


def _small(**kw) -> TransformerConfig:
    return TransformerConfig(**{"hidden": 32, "intermediate": 32, "layers": 2, "heads": 4, **kw})


def test_forward_shape_and_dtype():
    torch.manual_seed(0)
    model = TransformerMatchingNetwork()
    logits = model(_tokens(7))
    assert logits.shape == (7, 2) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_parameter_count_against_table_6():
    parts = parameter_breakdown(TransformerMatchingNetwork())
    # embeddings: 432*128 + 15*128 + 5*128 + LayerNorm 2*128
    # one layer: 4 * (128*128 + 128) + 2 * (128*128 + 128) + 2 LayerNorms * 2*128
    # pooler: 128*128 + 128; classifier: 128*2 + 2
    layer = 6 * (128 * 128 + 128) + 4 * 128
    assert parts == {
        "embeddings": 452 * 128 + 256,
        "encoder": 4 * layer,
        "pooler": 128 * 128 + 128,
        "classifier": 258,
        "total": 473_218,
    }
    table6 = {"embeddings": 0.06, "encoder": 0.40, "pooler": 0.02, "classifier": 0.01}
    for name, paper in table6.items():  # Table 6 reads as counts rounded up to 0.01 M
        assert math.ceil(parts[name] / 1e4) / 100 == pytest.approx(paper), name
    # Table 6's total (0.41 M) is the count without the three lookup tables, truncated.
    lookup = 452 * 128
    assert math.floor((parts["total"] - lookup) / 1e4) / 100 == pytest.approx(0.41)
    assert sum(parts[k] for k in table6) == parts["total"]


def test_transformer_config_fits_the_token_config():
    model = TransformerMatchingNetwork(
        transformer_config(TokenConfig(grid=(8, 6), delta=2), hidden=64, heads=2)
    )
    emb = model.embeddings
    assert emb.position_embeddings.num_embeddings == 48 and emb.segment_embeddings.num_embeddings == 3
    assert model.config.hidden == 64 and model.config.heads == 2 and emb.relative_position_embeddings is None
    model = TransformerMatchingNetwork(
        transformer_config(TokenConfig(relative_position=True, position=False))
    )
    assert model.embeddings.position_embeddings is None
    assert model.embeddings.relative_position_embeddings.num_embeddings == 432
    with pytest.raises(TypeError, match="unknown TransformerConfig fields"):
        TransformerMatchingNetwork(transformer_config(TokenConfig(), hiden=64))
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(hidden=130, heads=4)


@pytest.mark.parametrize(
    "flag,attr,key",
    [
        ("position", "position_embeddings", "position"),
        ("type", "type_embeddings", "type"),
        ("segment", "segment_embeddings", "segment"),
    ],
)
def test_disabled_embedding_has_no_table(flag, attr, key):
    full = TransformerMatchingNetwork(_small())
    off = TransformerMatchingNetwork(_small(**{flag: False}))
    assert getattr(off.embeddings, attr) is None
    assert not any(name.startswith(f"embeddings.{attr}") for name in off.state_dict())
    table = getattr(full.embeddings, attr).weight.numel()
    assert parameter_breakdown(full)["total"] - parameter_breakdown(off)["total"] == table
    tokens = _tokens(3, _small())
    del tokens[key]
    off.eval()
    assert off(tokens).shape == (3, 2)  # the disabled kind is not needed
    with pytest.raises(KeyError, match=f"'{key}'"):
        full(tokens)
    assert TransformerMatchingNetwork(_small()).embeddings.relative_position_embeddings is None
    with_relative = TransformerMatchingNetwork(_small(relative_position=True))
    assert with_relative.embeddings.relative_position_embeddings is not None


def test_masked_tokens_are_not_attended():
    torch.manual_seed(0)
    model = TransformerMatchingNetwork(_small(relative_position=True)).eval()
    tokens = _tokens(16, _small())
    tokens["mask"][:, 0] = True
    tokens["mask"][:, 5] = False  # token 5 (a current-pose keypoint) and 20 (an earlier one) hidden
    tokens["mask"][:, 20] = False
    tokens["mask"][:, 21] = True
    base = model(tokens)
    changed = {k: v.clone() for k, v in tokens.items()}
    for key in ("position", "relative"):
        changed[key][:, [5, 20]] = (changed[key][:, [5, 20]] + 17) % 432
    changed["segment"][:, 20] = 0
    with torch.no_grad():
        assert torch.equal(model(changed), base)
        visible = {k: v.clone() for k, v in tokens.items()}
        visible["position"][:, 21] = (visible["position"][:, 21] + 17) % 432
        assert not torch.allclose(model(visible), base)  # a visible token does matter


def test_fully_masked_rows_stay_finite():
    torch.manual_seed(0)
    model = TransformerMatchingNetwork(_small())
    tokens = _tokens(6, _small())
    tokens["mask"][:3] = False
    for mode in (model.train, model.eval):
        mode()
        logits = model(tokens)
        assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # The documented guard: a row without any visible token attends to all of its tokens (some
    # attention kernels return NaN, others zeros, for a row with no key at all).
    model.eval()
    unmasked = {k: v.clone() for k, v in tokens.items()}
    unmasked["mask"][:3] = True
    with torch.no_grad():
        assert torch.equal(model(tokens)[:3], model(unmasked)[:3])


def test_training_lowers_the_loss_on_a_separable_problem():
    torch.manual_seed(0)
    cfg = _small(dropout=0.0)
    # Matching pairs: the earlier pose sits on the same positions as the current one.
    tokens = _tokens(64, cfg, seed=1, visible=1.0)
    labels = torch.arange(64) % 2
    tokens["position"][:, 15:] = torch.where(
        labels[:, None] == 1, tokens["position"][:, :15], (tokens["position"][:, :15] + 200) % 432
    )
    model = TransformerMatchingNetwork(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(tokens), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(2), abs=0.05)
    assert losses[-1] < 0.5 * losses[0]


def test_initialisation_is_bert_like_and_seeded():
    torch.manual_seed(3)
    a = TransformerMatchingNetwork()
    torch.manual_seed(3)
    b = TransformerMatchingNetwork()
    torch.manual_seed(4)
    c = TransformerMatchingNetwork()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["encoder.0.qkv.weight"], sc["encoder.0.qkv.weight"])
    weights = torch.cat(
        [p.flatten() for n, p in a.named_parameters() if n.endswith("weight") and "norm" not in n]
    )
    assert weights.mean().abs() < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.02)
    for n, p in a.named_parameters():
        if "norm" in n:
            assert torch.equal(p, torch.ones_like(p) if n.endswith("weight") else torch.zeros_like(p)), n
        elif n.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), n


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = TransformerMatchingNetwork(_small())
    tokens = _tokens(8, _small())
    model.eval()
    assert torch.equal(model(tokens), model(tokens))
    model.train()
    assert not torch.equal(model(tokens), model(tokens))


def _pair_tokens(m: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(m, 30, generator=g) > 0.3
    return {
        "position": torch.randint(0, 432, (m, 30), generator=g),
        "type": torch.arange(15).repeat(2).expand(m, 30).clone(),
        "segment": torch.cat([torch.zeros(m, 15, dtype=torch.long), torch.ones(m, 15, dtype=torch.long)], 1),
        "mask": mask,
    }


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("queries", [30, 1])
def test_cpu_attention_equals_scaled_dot_product_attention(queries, masked):
    """The CPU path's attention (heads folded into the batch, the mask added by ``baddbmm``) computes
    what ``F.scaled_dot_product_attention`` computes, outputs and gradients, with the padding mask
    and without; with one query (the last layer's pooled token) as with all 30."""
    from keytrack.models import cpu_path

    torch.manual_seed(0)
    m, heads, d = 6, 4, 32
    q = torch.randn(m, heads, queries, d, requires_grad=True)
    k, v = (torch.randn(m, heads, 30, d, requires_grad=True) for _ in range(2))
    mask = None
    if masked:
        mask = torch.rand(m, 1, 1, 30) > 0.4
        mask[..., 0] = True  # every row keeps a key
    ours = cpu_path.attention(q, k, v, mask)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert ours.shape == (m, heads, queries, d)
    assert torch.allclose(ours, fused, atol=1e-5)
    w = torch.randn_like(ours)
    grads = [torch.autograd.grad((out * w).sum(), (q, k, v), retain_graph=True) for out in (ours, fused)]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)
    if masked:  # a masked key changes nothing: moving its value leaves the output where it was
        v2 = v.detach().clone()
        v2.masked_fill_(~mask[:, :, 0, :, None].expand_as(v2), 100.0)
        assert torch.allclose(cpu_path.attention(q, k, v2, mask), ours, atol=1e-4)


@pytest.mark.parametrize("visible", [0.7, 1.0])
def test_the_network_computes_the_same_on_both_paths(monkeypatch, visible):
    """The whole network in eval mode, on the CPU path and on PyTorch's kernels (the switch
    ``cpu_path.enabled`` turned off): the same logits and parameter gradients, with invisible
    keypoints (and a pair with none visible) and with every keypoint visible."""
    from keytrack.models import cpu_path

    torch.manual_seed(0)
    model = TransformerMatchingNetwork(TransformerConfig(relative_position=True)).eval()
    tokens = _tokens(200, visible=visible)  # more than one CPU chunk
    if visible < 1.0:
        tokens["mask"][0] = False
    results = []
    for on in (True, False):
        monkeypatch.setattr(cpu_path, "enabled", lambda x, on=on: on and x.device.type == "cpu")
        model.zero_grad()
        logits = model(tokens)
        (logits[:, 1] - logits[:, 0]).pow(2).sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (a, grads_a), (b, grads_b) = results
    assert torch.allclose(a, b, atol=1e-5)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-5), name


def test_cpu_dropout_rate_scale_and_seed():
    from keytrack.models.cpu_path import dropout

    x = torch.ones(400_000)
    torch.manual_seed(5)
    y = dropout(x, 0.1, True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003  # binomial std ≈ 0.0005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.005  # unbiased, as F.dropout
    torch.manual_seed(5)
    assert torch.equal(dropout(x, 0.1, True), y)  # the global seed decides the mask
    assert not torch.equal(dropout(x, 0.1, True), y)
    assert torch.equal(dropout(x, 0.1, False), x) and torch.equal(dropout(x, 0.0, True), x)
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
    # Elements are dropped independently: neighbours within one 64-bit draw are uncorrelated.
    d = (dropout(torch.ones(400_000), 0.5, True) == 0).float().view(-1, 4)
    assert abs((d[:, 0] * d[:, 1]).mean().item() - 0.25) < 0.01
    z = torch.ones(10, 3, requires_grad=True)
    dropout(z, 0.3, True).sum().backward()  # gradient through the mask and scale
    assert set(z.grad.unique().tolist()) <= {0.0, torch.tensor(1 / 0.7).item()}


def _every_token_forward(model: TransformerMatchingNetwork, tokens: dict) -> torch.Tensor:
    """The network with every layer computing all 30 tokens, the pooler reading the first."""
    mask = tokens["mask"].bool()
    mask = (mask | ~mask.any(dim=-1, keepdim=True))[:, None, None, :]
    x = model.embeddings(tokens)
    for layer in model.encoder:
        x = layer(x, mask)
    assert x.shape[1] == 30
    return model.classifier(model.pooler(x))


def test_last_layer_computing_only_the_pooled_token_changes_no_logit_or_gradient():
    """The last layer computes the first token alone (the pooler reads nothing else); logits and
    every parameter's gradient equal those of the network that computes all 30 tokens everywhere,
    at inference and in training, with masked tokens (including a masked first token) and a pair
    with no visible token."""
    torch.manual_seed(0)
    model = TransformerMatchingNetwork(TransformerConfig(dropout=0.0))
    tokens = _pair_tokens(m=8, seed=3)
    tokens["mask"][0, 0] = False
    tokens["mask"][1] = False
    with torch.no_grad():
        assert torch.allclose(model.eval()(tokens), _every_token_forward(model, tokens), atol=1e-5)
    model.train()  # dropout 0: training computes what inference does
    grads = []
    for forward in (model, lambda t: _every_token_forward(model, t)):
        model.zero_grad()
        logits = forward(tokens)
        (logits[:, 1] - logits[:, 0]).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name
    # The last layer's output really is one token wide.
    x = model.embeddings(tokens)
    assert model.encoder[-1](x, tokens["mask"][:, None, None, :] | True, first_tokens=1).shape == (8, 1, 128)


def test_cpu_inference_in_chunks_gives_the_logits_of_one_pass(monkeypatch):
    """Large CPU batches go through in cache-sized chunks at inference: the same logits as one pass
    (chunk larger than the batch), the last chunk shorter than the others; training is one pass."""
    from keytrack.models import cpu_path

    torch.manual_seed(0)
    model = TransformerMatchingNetwork(TransformerConfig()).eval()
    tokens = _pair_tokens(m=11)
    with torch.no_grad():
        monkeypatch.setattr(cpu_path, "CHUNK", 4)  # chunks of 4, 4 and 3 pairs
        chunked = model(tokens)
        monkeypatch.setattr(cpu_path, "CHUNK", 1000)
        whole = model(tokens)
    assert chunked.shape == (11, 2)
    assert torch.allclose(chunked, whole, atol=1e-6)
    calls = []
    monkeypatch.setattr(cpu_path, "CHUNK", 4)
    hook = model.pooler.register_forward_hook(lambda mod, inp, out: calls.append(out.shape[0]))
    with torch.no_grad():
        model(tokens)
        model.train()(tokens)
    hook.remove()
    assert calls == [4, 4, 3, 11]
