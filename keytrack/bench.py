"""``make bench``: where the time goes, as a fraction of what this machine can do.

    keytrack bench                                  # the default experiment (improved); make bench
    keytrack bench --experiment paper --device cuda --data ../shared/data/bonn_mppt

One run measures, in one process (threads, dtype and device stated in the table's notes):

* **the roofline**: the machine's own matmul rate, measured (not assumed) on a large square GEMM
  (``--square``), again around every timed row (a row's fraction is over the mean of the rates
  just before and after it, so the machine's drift during the run is not read as the code's), and
  the rate of the model's own GEMM shape (``[B · 30, H] × [H, H]`` at batch 256);
* **the matcher**: forward (``inference_mode``) and training step (forward + backward + AdamW) at
  batch 32 / 256 / 4096 pairs, as pairs/s, GFLOP/s (forward FLOPs per pair counted by
  :func:`keytrack.models.cost.count`, a training step taken as 3 × the forward) and the fraction of the
  square-GEMM roofline;
* **``keytrack train``'s whole step**: a short real run through Lightning with the data pipeline
  (sampling, encoding, augmentation, logging), pairs/s from its ``Throughput`` callback, beside
  the bare training step at the same pairs per batch;
* **the tracker**: frames/s tracking a generated test set (and ``--data``'s evaluation split when
  given), with the share of the time spent in the network (the rest is candidate gathering,
  encoding and assignment) and the rate the network alone would allow.

Writes ``runs/bench/table.{md,csv}`` (``--out``). Timings are medians of ``--repeats`` runs
after a warm-up; they mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from keytrack.outputs import default_out

log = logging.getLogger("keytrack.bench")

ABLATION = "bench"
BATCHES = (32, 256, 4096)


def _timed(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None], min_seconds: float = 0.2
) -> float:
    """Median seconds of one call of ``fn`` (each sample averages enough calls to last ``min_seconds``)."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, int(min_seconds / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def matmul_rate(m: int, k: int, n: int, *, device: str, dtype, repeats: int, sync) -> float:
    """Measured GFLOP/s of ``[m, k] @ [k, n]``."""
    import torch

    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    seconds = _timed(lambda: a @ b, repeats, sync)
    return 2.0 * m * k * n / seconds / 1e9


class Roofline:
    """The square-GEMM rate, measured again around every timed row.

    A row's fraction is over the mean of the rates measured just before and just after it, so that
    the machine's own drift during a run (other jobs, clocks) is not read as the code's; every
    measurement is kept (``samples``) and the table's notes give their range.
    """

    def __init__(self, n: int, *, device: str, repeats: int, sync):
        self.n, self.device, self.repeats, self.sync = n, device, repeats, sync
        self.samples: list[float] = []

    def measure(self) -> float:
        import torch

        rate = matmul_rate(
            self.n,
            self.n,
            self.n,
            device=self.device,
            dtype=torch.float32,
            repeats=self.repeats,
            sync=self.sync,
        )
        self.samples.append(rate)
        return rate

    def around(self, fn: Callable[[], object]) -> tuple[object, float]:
        """``fn()`` and the mean roofline measured just before and just after it."""
        before = self.measure()
        result = fn()
        return result, (before + self.measure()) / 2


def _batch(cfg, pairs: int, device: str) -> dict:
    from keytrack.models.cost import example_batch

    return {k: v.to(device) for k, v in example_batch(cfg, pairs).items()}


def model_rows(
    cfg,
    *,
    device: str,
    repeats: int,
    roofline: Roofline,
    sync,
    batches=BATCHES,
    autocast: bool = False,
    compiled: bool = False,
) -> tuple[list[dict], float]:
    """Forward and training-step rows of ``cfg``'s matcher; returns them and the FLOPs per pair.
    ``compiled``: the matcher under ``torch.compile`` (``nn.Module.compile``, compiled on the warm-up
    call of each batch size, which the timings leave out)."""
    import torch
    import torch.nn.functional as F

    from keytrack.models.cost import count
    from keytrack.models.factory import build_matcher, matcher_config

    torch.manual_seed(0)
    flops = count(build_matcher(matcher_config(cfg)), _batch(cfg, 1, "cpu"))["flops"][""]
    model = build_matcher(matcher_config(cfg)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if compiled:
        model.compile()
    dtype = ("bf16 autocast" if autocast else "fp32") + (", torch.compile" if compiled else "")
    ctx = (
        (lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16))
        if autocast
        else (lambda: torch.autocast(device_type=device.split(":")[0], enabled=False))
    )
    rows = []
    for b in batches:
        batch = _batch(cfg, b, device)
        labels = torch.arange(b, device=device) % 2
        model.eval()

        def forward():
            with torch.inference_mode(), ctx():
                model(batch)

        t, roof = roofline.around(lambda: _timed(forward, repeats, sync))
        rows.append(_rate_row(f"matcher forward, batch {b}, {dtype}", b / t, flops, roof))
        model.train()

        def step():
            opt.zero_grad(set_to_none=True)
            with ctx():
                loss = F.cross_entropy(model(batch).float(), labels)
            loss.backward()
            opt.step()

        t, roof = roofline.around(lambda: _timed(step, repeats, sync))
        rows.append(_rate_row(f"matcher training step, batch {b}, {dtype}", b / t, 3 * flops, roof))
    return rows, flops


def _rate_row(what: str, pairs_per_s: float, flops_per_pair: float, roofline: float) -> dict:
    gflops = pairs_per_s * flops_per_pair / 1e9
    return {"what": what, "pairs_s": pairs_per_s, "gflops": gflops, "fraction": gflops / roofline}


def train_step_rows(
    experiment: str,
    overrides: Sequence[str],
    *,
    flops: float,
    roofline: Roofline,
    device: str,
    repeats: int,
    sync,
    steps: int = 120,
) -> list[dict]:
    """``keytrack train``'s whole step (Lightning + data pipeline) beside the bare step at its batch."""
    import torch
    import torch.nn.functional as F

    from keytrack.models.factory import build_matcher, matcher_config

    def whole_run() -> tuple:
        with tempfile.TemporaryDirectory() as out:
            return _train_run(experiment, overrides, out, steps, device)

    (result, cfg), roof_whole = roofline.around(whole_run)
    pps = result["train_pairs_per_s"]
    pairs = max(1, round(result.get("mean_batch_pairs") or int(cfg.loader.batch_size)))
    model = build_matcher(matcher_config(cfg)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = _batch(cfg, pairs, device)
    labels = torch.arange(pairs, device=device) % 2

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch), labels).backward()
        opt.step()

    t, roof_bare = roofline.around(lambda: _timed(step, repeats, sync))
    bare = pairs / t
    rows = [
        _rate_row(f"bare training step, batch {pairs} pairs", bare, 3 * flops, roof_bare),
        _rate_row(
            f"`keytrack train` whole step ({experiment}, batch {cfg.loader.batch_size} "
            f"{'lists' if str(cfg.loss.name) == 'listwise' else 'pairs'} ≈ {pairs} pairs)",
            pps or float("nan"),
            3 * flops,
            roof_whole,
        ),
    ]
    rows[-1]["vs_bare"] = (pps or float("nan")) / bare
    return rows


def _train_run(experiment: str, overrides: Sequence[str], out: str, steps: int, device: str) -> tuple:
    """A short ``keytrack train`` run into ``out``: its result and config. The training command is a
    plug-in of the command line (the Lightning layer, :func:`keytrack.cli.command`), which the
    library does not import by name."""
    from keytrack.cli import command
    from keytrack.config import load_config

    batch_size = int(load_config([f"experiment={experiment}"]).loader.batch_size)
    cfg = load_config(
        [
            f"experiment={experiment}",
            *overrides,
            f"output_dir={out}",
            "logging.wandb=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "trainer.max_epochs=1",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            f"loader.samples_per_epoch={steps * batch_size}",
            f"trainer.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
        ]
    )
    return command("train").train(cfg), cfg


def tracker_rows(
    cfg,
    dataset,
    label: str,
    *,
    device: str,
    flops: float,
    roofline: Roofline,
    runs: Sequence[tuple[str, int]] = (("none", 1), ("velocity", 1), ("none", 8)),
) -> list[dict]:
    """Frames/s of the online tracker (§3.1, δ = 4, all candidates) with a freshly initialised matcher,
    for each ``(motion, videos at once)`` of ``runs``: without and with the tracker's motion (each
    candidate moved by its track's velocity first), one video at a time or several advancing
    together with their frames' pairs in one forward (:meth:`keytrack.tracking.Tracker.track_videos`)."""
    import torch

    from keytrack.models.factory import build_encoder, build_matcher, matcher_config
    from keytrack.tracking import Tracker
    from keytrack.tracking.scorers import PoseEntailmentScorer

    torch.manual_seed(0)
    network = build_matcher(matcher_config(cfg)).to(device).eval()
    scorer = PoseEntailmentScorer(network, build_encoder(cfg), device=device)
    frames, rows = dataset.num_frames, []
    for motion, at_once in runs:
        tracker = Tracker(scorer, delta=int(cfg.pairs.delta), match_threshold=0.5, motion=motion)
        tracker.track_dataset(dataset, videos_at_once=at_once)  # warm-up
        scorer.pairs_scored, scorer.network_seconds, scorer.forwards = 0, 0.0, 0

        def timed() -> float:
            t0 = time.perf_counter()
            tracker.track_dataset(dataset, videos_at_once=at_once)
            return time.perf_counter() - t0

        seconds, roof = roofline.around(timed)
        net = scorer.network_seconds
        row = _rate_row(
            f"tracking {label} ({frames} frames), δ = {cfg.pairs.delta}, all candidates"
            + (", + motion" if motion != "none" else "")
            + (f", {min(at_once, len(dataset.videos))} videos at once" if at_once > 1 else ""),
            scorer.pairs_scored / seconds,
            flops,
            roof,
        )
        row.update(
            frames_s=frames / seconds,
            network_share=net / seconds,
            network_frames_s=frames / net if net > 0 else float("nan"),
            pairs_per_forward=scorer.pairs_scored / max(scorer.forwards, 1),
        )
        rows.append(row)
    return rows


#: the OKS gate's (high, low) in the speed rows: the default that keytrack.tracking.gate documents
GATE = (0.5, 0.1)


def comparison_rows(dataset, label: str, *, device: str, videos_at_once: int = 8, cfg=None) -> list[dict]:
    """Frames/s of the trackers the tracker comparison ranks, on the same frames: OKS without motion and
    with the Kalman motion, the track-level matcher (freshly initialised, experiment ``track``) with the
    Kalman motion, with and without the OKS gate (:mod:`keytrack.tracking.gate`, 0.5 / 0.1), the pair
    matcher of ``cfg`` (freshly initialised) with motion behind the gate, and each boxmot tracker at its
    defaults where the ``baselines`` extra is installed (:mod:`keytrack.tracking.boxmot_trackers`). Each
    tracker runs once after a warm-up run."""
    import importlib.util

    import torch

    from keytrack.config import load_config
    from keytrack.models.track_transformer import TrackTransformer, track_model_config
    from keytrack.tracking import OKSScorer, Tracker
    from keytrack.tracking.boxmot_trackers import BOXMOT_TRACKERS, BoxmotTracker
    from keytrack.tracking.gate import GatedScorer
    from keytrack.tracking.track_scorer import TrackEntailmentScorer

    torch.manual_seed(0)
    model = TrackTransformer(track_model_config(load_config(["experiment=track"])))

    def track_level(gate: bool = False):
        scorer = TrackEntailmentScorer(model, device)
        return Tracker(GatedScorer(scorer, *GATE) if gate else scorer, motion="kalman")

    runs = {  # what: (tracker, videos at once)
        "OKS": (lambda: Tracker(OKSScorer(), motion="none"), 1),
        "OKS + Kalman": (lambda: Tracker(OKSScorer(), motion="kalman"), 1),
        "track-level matcher + Kalman": (track_level, 1),
        f"track-level matcher + Kalman, {videos_at_once} videos at once": (track_level, videos_at_once),
        f"track-level matcher + Kalman behind the OKS gate {GATE[0]:g} / {GATE[1]:g}, {videos_at_once} "
        "videos at once": ((lambda: track_level(gate=True)), videos_at_once),
    }
    if cfg is not None:
        from keytrack.models.factory import build_encoder, build_matcher, matcher_config
        from keytrack.tracking.scorers import PoseEntailmentScorer

        network = build_matcher(matcher_config(cfg)).to(device).eval()

        def pair_gated():
            scorer = PoseEntailmentScorer(network, build_encoder(cfg), device=device)
            return Tracker(GatedScorer(scorer, *GATE), motion="velocity")

        runs[f"pair matcher + motion behind the OKS gate {GATE[0]:g} / {GATE[1]:g}"] = (pair_gated, 1)
    if importlib.util.find_spec("boxmot") is not None:
        runs.update({f"boxmot {n} (defaults)": ((lambda n=n: BoxmotTracker(n)), 1) for n in BOXMOT_TRACKERS})
    else:
        log.warning("boxmot is not installed (make install-baselines): no boxmot rows")
    rows = []
    for what, (make, at_once) in runs.items():
        kwargs = {"videos_at_once": at_once} if at_once > 1 else {}
        make().track_dataset(dataset, **kwargs)  # warm-up
        tracker = make()
        tracker.track_dataset(dataset, **kwargs)
        frames_s = tracker.frames_tracked / tracker.seconds
        rows.append({"what": f"tracking {label} ({dataset.num_frames} frames): {what}", "frames_s": frames_s})
    return rows


def measure(args: argparse.Namespace) -> Path:
    """Measure every row of the benchmark (GEMMs, the network, a training step, tracking), each
    against the square-GEMM roofline taken around it, and write and print the table."""
    import torch

    from keytrack.config import load_config
    from keytrack.tables import write_table

    if args.threads:
        torch.set_num_threads(int(args.threads))
    device = args.device
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    cfg = load_config([f"experiment={args.experiment}", *args.overrides])
    square = Roofline(args.square, device=device, repeats=args.repeats, sync=sync)
    rows = _gemm_rows(args, cfg, square, sync)
    model, flops = _network_rows(args, cfg, square, sync)
    rows += model
    rows += _tracking_rows(args, cfg, flops, square)
    rows[0].update(gflops=statistics.median(square.samples), fraction=1.0)
    notes = _measure_notes(args, flops, square)
    out = Path(args.out) if args.out else default_out(ABLATION)
    write_table(rows, out, columns=_measure_columns(), title="Benchmark: where the time goes", notes=notes)
    print((out / "table.md").read_text())
    return out


def _gemm_rows(args: argparse.Namespace, cfg, square: Roofline, sync: Callable[[], None]) -> list[dict]:
    """The roofline's own row (filled in at the end), an fp32 GEMM of the model's shape and, with
    ``--bf16``, a square bf16 GEMM: what the hardware does on plain matrix products."""
    import torch

    device = args.device
    rows = [{"what": f"roofline: fp32 GEMM {args.square}³ (median of every measurement in this run)"}]
    hidden = int(cfg.model.get("hidden", 128) or 128)
    shape, roof = square.around(
        lambda: matmul_rate(
            256 * 30, hidden, hidden, device=device, dtype=torch.float32, repeats=args.repeats, sync=sync
        )
    )
    rows.append(
        {
            "what": f"fp32 GEMM of the model's shape [{256 * 30}, {hidden}] × [{hidden}, {hidden}]",
            "gflops": shape,
            "fraction": shape / roof,
        }
    )
    if args.bf16:
        bf, roof = square.around(
            lambda: matmul_rate(
                args.square,
                args.square,
                args.square,
                device=device,
                dtype=torch.bfloat16,
                repeats=args.repeats,
                sync=sync,
            )
        )
        rows.append({"what": f"bf16 GEMM {args.square}³", "gflops": bf, "fraction": bf / roof})
    return rows


def _network_rows(
    args: argparse.Namespace, cfg, square: Roofline, sync: Callable[[], None]
) -> tuple[list[dict], float]:
    """The network's forward at each batch size (plus bf16 autocast and ``torch.compile`` when
    asked) and a training step, with the FLOPs of one pair forward that later rows are rated by."""
    device = args.device
    batches = tuple(args.batches)
    rows, flops = model_rows(
        cfg, device=device, repeats=args.repeats, roofline=square, sync=sync, batches=batches
    )
    if args.bf16:
        rows += model_rows(
            cfg,
            device=device,
            repeats=args.repeats,
            roofline=square,
            sync=sync,
            batches=batches[1:2] or batches,
            autocast=True,
        )[0]
    if args.compile:
        rows += model_rows(
            cfg,
            device=device,
            repeats=args.repeats,
            roofline=square,
            sync=sync,
            batches=batches[1:2] or batches,
            compiled=True,
        )[0]
    if not args.no_train:
        rows += train_step_rows(
            args.experiment,
            args.overrides,
            flops=flops,
            roofline=square,
            device=device,
            repeats=args.repeats,
            sync=sync,
            steps=args.train_steps,
        )
    return rows, flops


def _tracking_rows(args: argparse.Namespace, cfg, flops: float, square: Roofline) -> list[dict]:
    """Tracking speed on generated videos and, with ``--data``, on a real split."""
    from keytrack.synth import generate_dataset

    device = args.device
    runs = (("none", 1), ("velocity", 1), ("none", args.videos_at_once))
    rows = tracker_rows(
        cfg,
        generate_dataset(args.track_videos, seed=1),
        f"{args.track_videos} generated videos",
        device=device,
        flops=flops,
        roofline=square,
        runs=runs,
    )
    if args.data:
        from keytrack.io import default_eval_split, read_dataset

        split = args.split or default_eval_split(args.data)
        data, label = read_dataset(args.data, split=split), f"{Path(args.data).name} {split}"
        rows += tracker_rows(cfg, data, label, device=device, flops=flops, roofline=square, runs=runs)
        rows += comparison_rows(data, label, device=device, videos_at_once=args.videos_at_once, cfg=cfg)
    return rows


def _measure_notes(args: argparse.Namespace, flops: float, square: Roofline) -> list[str]:
    """The table's notes: the device and settings, how fractions of the roofline are taken, and
    what the tracking columns mean."""
    import torch

    device = args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    return [
        f"Device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 "
        "unless "
        f"stated; experiment {args.experiment} ({' '.join(args.overrides) or 'no overrides'}), "
        f"{flops / 1e6:.1f} MFLOPs per pair forward (keytrack.models.cost; a training step counted as 3 ×).",
        "Fraction: GFLOP/s over the square-GEMM rate (the roofline) measured just before and just after "
        f"that row (their mean), so that the machine's drift is not read as the code's; the roofline was "
        f"measured {len(square.samples)} times, {min(square.samples):.1f}-{max(square.samples):.1f} GFLOP/s. "
        f"Medians of {args.repeats} timings after a warm-up.",
        "Tracking: a freshly initialised matcher (speed does not depend on the weights); network share = "
        "time in the network's forward / tracking time; network-bound frames/s = frames / network time.",
    ]


def _measure_columns() -> list:
    """The benchmark table's columns, in order."""
    from keytrack.tables import Column

    return [
        Column("what", "What"),
        Column("pairs_s", "pairs/s", digits=0),
        Column("gflops", "GFLOP/s", digits=1),
        Column("fraction", "of roofline", digits=2),
        Column("vs_bare", "vs bare step", digits=2),
        Column("frames_s", "frames/s", digits=1),
        Column("network_share", "network share", digits=2),
        Column("network_frames_s", "network-bound frames/s", digits=1),
        Column("pairs_per_forward", "pairs / forward", digits=0),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment",
        default=os.environ.get("EXPERIMENT", "improved"),
        help="the matcher's experiment (default: improved, what make train trains)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for the matcher")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), metavar="B")
    parser.add_argument("--square", type=int, default=2048, help="size of the roofline's square GEMM")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--bf16", action="store_true", help="also bf16: the GEMM rate and the matcher under autocast"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also the matcher under torch.compile (forward and training step, second batch size)",
    )
    parser.add_argument("--no-train", action="store_true", help="leave out the keytrack train step")
    parser.add_argument("--train-steps", type=int, default=120, help="steps of the short keytrack train run")
    parser.add_argument("--track-videos", type=int, default=6, help="generated videos to track")
    parser.add_argument(
        "--videos-at-once",
        type=int,
        default=8,
        help="the tracker row with several videos per forward (keytrack track --videos-at-once)",
    )
    parser.add_argument("--data", default=None, help="also track this PoseTrack18 folder's evaluation split")
    parser.add_argument("--split", default=None)
    parser.add_argument("--out", default=None, help="output folder (default runs/bench)")


def run(args: argparse.Namespace) -> int:
    """``keytrack bench``: measure and write the table."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.data:  # a missing folder or split fails now, not after minutes of timings
        from keytrack.io import default_eval_split, read_dataset

        args.split = args.split or default_eval_split(args.data)
        read_dataset(args.data, split=args.split)
    measure(args)
    return 0
