"""Draws docs/img/matcher_inputs.png: the inputs of the CNN baselines for one matching and one
non-matching synthetic pair (run from the project root: .venv/bin/python docs/matcher_inputs.py)."""

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keytrack.frames import SyntheticFrames, pose_crops
from keytrack.pairs import sample_pairs
from keytrack.rasterize import rasterize_pairs
from keytrack.synth import generate_dataset

ds = generate_dataset(1, 0, first_index=1000)
table = ds.table()
pairs = sample_pairs(table, delta=4)
# one matching and one non-matching pair with delta 2
i_pos = np.flatnonzero((pairs.label == 1) & (pairs.delta == 2))[10]
i_neg = np.flatnonzero((pairs.label == 0) & (pairs.delta == 2))[10]
kp = torch.as_tensor(table.keypoints, dtype=torch.float32)
size = torch.as_tensor(table.frame_size, dtype=torch.float32)
src = SyntheticFrames(0)
fig, axes = plt.subplots(2, 6, figsize=(15, 5.2))
for row, (i, name) in enumerate(((i_pos, "same person"), (i_neg, "different people"))):
    c, p = int(pairs.current[i]), int(pairs.previous[i])
    col = 0
    for res in ((24, 18), (96, 72)):
        img = rasterize_pairs(kp[[c]], kp[[p]], size[[c]], res)[0]
        for half, label in ((slice(0, 3), "p^t"), (slice(3, 6), "p^{t-Δ}")):
            axes[row, col].imshow(img[half].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            axes[row, col].set_title(f"keypoints {res[0]}×{res[1]}: ${label}$", fontsize=9)
            col += 1
    crops = pose_crops(ds, src, size=(72, 96))
    for idx, label in ((c, "p^t"), (p, "p^{t-Δ}")):
        axes[row, col].imshow(crops[idx].permute(1, 2, 0).numpy())
        axes[row, col].set_title(f"crop 72×96: ${label}$", fontsize=9)
        col += 1
    axes[row, 0].set_ylabel(name)
for a in axes.flat:
    a.set_xticks([])
    a.set_yticks([])
fig.suptitle(
    "Inputs of the CNN baselines (§5.2, A.5): the pair drawn as keypoint images (channels 0-2 | 3-5), and "
    "box crops",
    fontsize=10,
)
fig.tight_layout()
fig.savefig("docs/img/matcher_inputs.png", dpi=80)
