"""The paper's claims a table is checked against (a spec's ``claims: <name>``; lines of its notes).

``figure7`` (§5.2, Figure 7 right gives no numbers): the transformer has fewer ID switches than both CNNs
at low resolution, and the CNNs catch up at high resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from keytrack.tables import MeanStd

#: Figure 7's methods (rows of ``experiments/ablations/resolution_sweep.yaml``) and their labels.
METHODS: dict[str, str] = {
    "transformer": "Transformer (keypoints)",
    "cnn_keypoints": "CNN (keypoints)",
    "cnn_crops": "CNN (image crops)",
}
#: Low resolutions for the claims: long edge at most the paper's chosen 24 × 18.
LOW_MAX_EDGE = 24


@dataclass
class Claim:
    claim: str
    status: str  # "holds", "does not hold" or "not testable"
    evidence: str

    def line(self) -> str:
        return f'Claim "{self.claim}": **{self.status}** ({self.evidence}).'


def _mean(value) -> float | None:
    if isinstance(value, MeanStd):
        return value.mean if value.n > 0 and math.isfinite(value.mean) else None
    return None if value is None or not math.isfinite(float(value)) else float(value)


def check_claims(
    idsw: Mapping[str, Mapping[tuple[int, int], MeanStd | float | None]], low_max_edge: int = LOW_MAX_EDGE
) -> list[Claim]:
    """Figure 7's two claims on ``idsw[method][(w, h)]`` (mean %IDSW Total); docs/ablations_paper.md."""
    cnns = [m for m in ("cnn_keypoints", "cnn_crops") if m in idsw]
    tr = {r: _mean(v) for r, v in idsw.get("transformer", {}).items()}
    tr = {r: v for r, v in tr.items() if v is not None}
    claims = []

    text1 = "the transformer has fewer ID switches than both CNNs at low resolution"
    comparisons, missing = [], []
    for m in cnns:
        for r, v in sorted(idsw[m].items(), key=lambda kv: max(kv[0])):
            c = _mean(v)
            if max(r) <= low_max_edge and c is not None and r in tr:
                comparisons.append((m, r, tr[r], c))
        if not any(x[0] == m for x in comparisons):
            missing.append(m)
    if not comparisons:
        claims.append(
            Claim(
                text1,
                "not testable",
                f"no resolution with a long edge <= {low_max_edge} has both the transformer and a CNN",
            )
        )
    else:
        ok = all(t < c for _, _, t, c in comparisons)
        evidence = "; ".join(
            f"{r[0]}x{r[1]}: transformer {t:.2f} vs {METHODS.get(m, m)} {c:.2f} %IDSW"
            for m, r, t, c in comparisons
        )
        if missing:
            evidence += f"; no numbers for {', '.join(METHODS.get(m, m) for m in missing)}"
        claims.append(Claim(text1, "holds" if ok else "does not hold", evidence))

    text2 = "CNNs catch up with the transformer at high resolution"
    gaps = []
    for m in cnns:
        common = sorted((r for r in idsw[m] if r in tr and _mean(idsw[m][r]) is not None), key=max)
        if len(common) >= 2:
            lo, hi = common[0], common[-1]
            gaps.append((m, lo, _mean(idsw[m][lo]) - tr[lo], hi, _mean(idsw[m][hi]) - tr[hi]))
    if not gaps:
        claims.append(
            Claim(text2, "not testable", "no CNN has two resolutions in common with the transformer")
        )
    else:
        ok = all(g_hi < g_lo for _, _, g_lo, _, g_hi in gaps)
        evidence = "; ".join(
            f"{METHODS.get(m, m)} − transformer: {g_lo:+.2f} at {lo[0]}x{lo[1]}, {g_hi:+.2f} at "
            f"{hi[0]}x{hi[1]}"
            for m, lo, g_lo, hi, g_hi in gaps
        )
        if ok and all(g_lo <= 0 for _, _, g_lo, _, _ in gaps):
            evidence = (
                "only trivially: no CNN is behind the transformer even at the lowest resolution, so "
                "there is nothing to catch up; " + evidence
            )
        claims.append(Claim(text2, "holds" if ok else "does not hold", evidence))
    return claims


def figure7(raw: Sequence[Mapping], rows: Sequence[Mapping]) -> list[str]:
    """The note lines of :func:`check_claims` on a resolution sweep's rows (mean %IDSW Total)."""
    idsw: dict = {}
    for r, row in zip(raw, rows):
        idsw.setdefault(r["row"], {})[tuple(r["resolution"])] = row["idsw"]
    return [
        *(c.line() for c in check_claims(idsw)),
        f"Claims are checked on mean %IDSW Total; low resolution = long edge <= {LOW_MAX_EDGE} (the paper's "
        "24×18 and below); \"catch up\" = the CNN's %IDSW minus the transformer's is smaller at the highest "
        "resolution than at the lowest. With few seeds and a small budget a difference may be within the "
        "seed-to-seed spread (see ±).",
    ]


#: The plug-ins a spec's ``claims`` may name.
CLAIMS: dict[str, Callable[[Sequence[Mapping], Sequence[Mapping]], list[str]]] = {"figure7": figure7}
