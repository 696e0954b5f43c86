"""The notes under every tracking-time table (data, seeds, tracker, match thresholds, cache)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from keytrack.ablations.cells import (
    DEFAULT_SEEDS,
    GT_SETTING,
    IMPROVED_MATCHERS,
    LEARNED_BASELINES,
    TrackingOptions,
    base,
    fixed_thresholds,
    grid_edge,
    grid_of,
    motion_of,
)
from keytrack.ablations.evaluate import NON_LEARNED, PAPER_KEYPOINT_THRESHOLD, SETTING_LABELS
from keytrack.ablations.runs import RunCache
from keytrack.poses import Dataset
from keytrack.tracking.boxmot_trackers import boxmot_method


def common_notes(
    opts: TrackingOptions,
    eval_gt: Dataset,
    eval_description: str,
    cache: RunCache,
    settings: Sequence[str],
    matchers: Sequence[str | None] = (None,),
    *,
    thresholds: Mapping | None = None,
    label: Callable[[str], str] = str,
    keypoint_threshold: bool = True,
    ap_before_threshold: bool = False,
    train_description: str = "",
    filled: int = 0,
) -> list[str]:
    """The notes of a table of ``settings`` and ``matchers``; the output keypoint threshold's only with
    ``keypoint_threshold``."""
    output = (
        f" With predicted keypoints, keypoints below {opts.keypoint_threshold:g} are removed from the "
        f"output before MOTA and %IDSW (A.3; the paper: {PAPER_KEYPOINT_THRESHOLD})"
        + ("; AP is the keypoints' own, before that threshold." if ap_before_threshold else ".")
        if keypoint_threshold
        else ""
    )
    match = _match_note(opts, matchers, thresholds or {}, label, train_description, filled)
    return [
        f"Evaluation: {eval_description} ({eval_gt.report()}); the paper: PoseTrack 2018 val. "
        "%IDSW = 100 · ID switches / GT joints and MOTA as poseval computes them (§4.1), Total columns.",
        f"Predicted keypoints: keytrack.perturb, {_seeds_note(opts, settings)}.",
        f"Tracker (§3.1): {match}; track score = maximum over the window (A.4); "
        f"{_compared_note(opts, matchers)}.{output}",
        *_setting_notes(opts, matchers, label),
        f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); "
        "delete a file there to run it again.",
    ]


def _seeds_note(opts: TrackingOptions, settings: Sequence[str]) -> str:
    used = opts.seeds or DEFAULT_SEEDS
    seeds = f"perturbation seed{'s' if len(used) > 1 else ''} {', '.join(map(str, used))}"
    if len(used) <= 1:
        return seeds
    seeds += " (mean ± sample std over seeds)"
    if GT_SETTING in settings and not opts.gt_all_seeds:
        seeds += f"; GT keypoints: seed {used[0]} only (without noise the seed only reorders the poses of a "
        seeds += "frame)"
    return seeds


def _candidates(n: int | None) -> str:
    return f"the {n} nearest poses of each earlier frame" if n else "every pose of the earlier frames"


def _compared_note(opts: TrackingOptions, matchers: Sequence[str | None]) -> str:
    learned = [m for m in matchers if base(m) not in NON_LEARNED]
    if not learned:
        return f"OKS and IoU compare with {_candidates(None)}"
    baselines = any(base(m) in LEARNED_BASELINES for m in matchers)
    return (
        f"the learned matchers compare with {_candidates(opts.nearest)}"
        + (f", the learned baselines with {_candidates(opts.baseline_nearest)}" if baselines else "")
        + ("; OKS and IoU with every pose" if len(learned) < len(matchers) else "")
    )


def _match_note(
    opts: TrackingOptions,
    matchers: Sequence[str | None],
    thresholds: Mapping,
    label: Callable[[str], str],
    train_description: str,
    filled: int,
) -> str:
    """Each matcher's match threshold: the learned matchers' decision point, given, or tuned (OKS, IoU)."""
    learned = [m for m in matchers if base(m) not in NON_LEARNED]
    tuned = [m for m in matchers if base(m) in NON_LEARNED]
    fixed = fixed_thresholds(opts, matchers)
    given = {m for m in matchers if m in opts.match_thresholds}  # each with its own --matcher-threshold
    match = (
        f"match threshold {opts.match_threshold:g} for the learned matchers (the decision point of their "
        "score, not tuned)"
        if any(m not in given for m in learned)
        else ""
    )
    for m in [*(m for m in learned if m in given), *tuned]:
        t = thresholds.get(m)
        match += ("; " if match else "match threshold ") + (
            f"{label(m)} per keypoint setting and stride (the Match thr. column)"
            if isinstance(t, Mapping)
            else f"{label(m)} {t:g}"
            + (_fixed_how(m, given) if m in given or fixed.get(base(m)) is not None else "")
            if t is not None
            else f"{label(m)} none (tuning failed)"
        )
    tuned_here = [m for m in tuned if fixed.get(base(m)) is None and m not in given]
    if not tuned_here:
        return match
    how = (
        "each keypoint setting and frame stride of the table, tracked as its cells are"
        if opts.tune_on == "cell"
        else "GT keypoints, stride 1"
    )
    grids = {}  # the tuned trackers of each grid
    for m in tuned_here:
        grids.setdefault(grid_of(opts, m), []).append(label(m))
    match += (
        f"; tuned on the training split ({train_description}, {how}) for the lowest %IDSW Total (tuning.md): "
        + "; ".join(
            f"{', '.join(names)} over {', '.join(f'{t:g}' for t in grid)}" for grid, names in grids.items()
        )
    )
    edges = []
    for m in tuned_here:
        t = thresholds.get(m)
        edges += [
            label(m) if k is None else f"{label(m)} ({SETTING_LABELS.get(k[0], k[0])}, stride {k[1]})"
            for k, v in (t.items() if isinstance(t, Mapping) else [(None, t)])
            if grid_edge(v, grid_of(opts, m))
        ]
    if edges:
        match += (
            f"; for {', '.join(edges)} that is an edge of the grid, where a wider --grid may choose another"
        )
    if filled:
        match += (
            f"; {filled} ground-truth poses of it without a head box got one (keytrack.evaluation."
            "head_boxes) so that PCKh matching can score them"
        )
    return match


def _fixed_how(matcher: str, given: set) -> str:
    found = boxmot_method(base(matcher))
    if found and found[1] and matcher not in given:
        return f" (boxmot's default {found[0].threshold})"
    return " (given)"


def _setting_notes(
    opts: TrackingOptions, matchers: Sequence[str | None], label: Callable[[str], str]
) -> list[str]:
    """The notes of the tracker settings and matchers beyond the paper's that a table uses."""
    learned = [m for m in matchers if base(m) not in NON_LEARNED]
    baselines = [m for m in matchers if base(m) in LEARNED_BASELINES]
    notes = []
    if opts.detection_threshold is not None:
        notes.append(
            f"Confident first, for every matcher: poses with detection score >= {opts.detection_threshold:g} "
            "are assigned first, to the tracks with such an appearance in the window, then every pose left "
            "over every track left (--detection-threshold, keytrack.tracking.tracker step 7; the paper: "
            "one pass)."
        )
    if len(opts.oks_scale) > 1:
        scales = ", ".join(f"{k:g}" for k in opts.oks_scale)
        notes.append(
            "OKS's σ times K, K tuned on the training split with the match threshold in each cell over "
            f"{scales} (--oks-scale; 1 is COCO's σ, the paper's OKS; the chosen K: tuning.md's σ scale "
            "column)."
        )
    elif opts.oks_scale[0] != 1:
        notes.append(
            f"OKS with every keypoint's σ times {opts.oks_scale[0]:g} (--oks-scale; 1 is COCO's σ, the "
            "paper's OKS), in tuning and tracking alike."
        )
    if opts.gate:
        high, low = opts.gate
        notes.append(
            f"OKS gate, for the learned matchers: a pose whose best track has OKS >= {high:g} while no "
            f"other track, and no other pose with that track, reaches {low:g} is assigned by OKS without "
            "the network (--gate, keytrack.tracking.gate); the network scores the other poses."
        )
    if opts.new_track_threshold is not None:
        notes.append(
            "Confident births, for keytrack's trackers with predicted keypoints: a pose of detection "
            f"score < {opts.new_track_threshold:g} that continues no track is left out "
            "(--new-track-threshold, keytrack.tracking.tracker step 8, ByteTrack's new-track rule; the "
            "paper keeps every pose). boxmot's trackers apply their own rule."
        )
    if opts.confidence:
        notes.append(
            "Matching uses only the predicted keypoints with confidence ≥ τ (the tracker's "
            'min_keypoint_confidence; Figure 10: keypoint predictions "not used due to low confidence"): '
            + ", ".join(
                f"{'every matcher' if m == '*' else label(m)} τ = {t:g}" for m, t in opts.confidence.items()
            )
            + "; the output keeps every keypoint."
        )
    if any(motion_of(m) == "kalman" for m in matchers):
        notes.append(
            "+ Kalman (beyond the paper): the same tracker and scorer, each candidate first moved by its "
            "track's constant-velocity Kalman prediction, re-updated along the straight line between "
            "observations after missed frames (OC-SORT; keytrack.tracking.kalman, motion='kalman'); its "
            "match threshold, for OKS and IoU, tuned with it too."
        )
    if any(boxmot_method(base(m)) for m in matchers):
        import importlib.metadata as md

        try:
            version = f"boxmot {md.version('boxmot')}"
        except md.PackageNotFoundError:
            version = "boxmot (not installed: its cells failed)"
        notes.append(
            f"boxmot rows ({version}; keytrack.tracking.boxmot_trackers): the practitioner's Kalman-filter "
            "trackers, fed one box per pose (its visible keypoints' extent plus 10 % per side) and the "
            "pose's detection score, appearance (ReID) and camera-motion compensation off, every other "
            "setting at the tracker's default; (tuned): the association threshold tuned on the training "
            "split as OKS's is, (defaults): boxmot's. A pose the tracker does not report is left out (its "
            "joints count as misses), so compare them at their MOTA."
        )
    if any(motion_of(m) == "velocity" for m in matchers):
        notes.append(
            "+ motion (beyond the paper): the same tracker and scorer, each candidate first moved by its "
            "track's velocity times Δ (keytrack.pairs.pose_motion; keytrack.tracking.Tracker, "
            "motion='velocity'); its match threshold, for OKS and IoU, tuned with motion too."
        )
    if baselines:
        notes.append(
            f"Learned baselines (§4.2, §5.2): each trained on the training split from its experiment file "
            f"({', '.join(f'experiments/{base(m)}.yaml' for m in dict.fromkeys(baselines))}) with the "
            f"training budget of experiment {opts.training_experiment} (its optim, loader and max_epochs, "
            "as A.5 trains the CNNs like the transformer)."
        )
    improved = next((base(m) for m in matchers if base(m) in IMPROVED_MATCHERS), None)
    if improved:
        notes.append(
            f"{label(improved)}: experiments/{opts.improved_experiment}.yaml"
            + (f" with {' '.join(opts.improved_overrides)}" if opts.improved_overrides else "")
            + " (docs/matchers.md)."
        )
    if len(learned) and len(opts.training_seeds) > 1:
        notes.append(
            f"The learned matchers are trained with seeds {', '.join(map(str, opts.training_seeds))}"
            + (
                f" (the learned baselines: {', '.join(map(str, opts.baseline_train_seeds))})"
                if baselines and opts.baseline_train_seeds
                else ""
            )
            + "; a cell over several trainings is their mean ± sample std."
        )
    return notes
