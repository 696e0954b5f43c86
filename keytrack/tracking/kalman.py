"""A constant-velocity Kalman filter per track: the tracker's ``motion="kalman"`` (beyond the paper).

The paper's tracker (§3.1) compares a frame's poses with the tracked poses of the last ``δ``
timesteps where they were. With ``motion="kalman"`` each candidate is first moved to where its
track's filter predicts the track at the current frame, as ``motion="velocity"`` moves it by
its track's last velocity; every scorer (OKS, IoU, a matching network) sees the moved pose.

One filter per track, vectorised over the tracks of a video with numpy. The state is the
track's position and velocity per timestep, in x and y, under a constant-velocity model with
a white (piecewise constant) acceleration per timestep. Both axes share the transition ``F``,
the observation ``H = [1, 0]`` and the noises, so they share one ``2 × 2`` covariance.

*What is observed.* A pose's centre jumps when a joint appears or vanishes; the observation of
a track is therefore chained from its previous one by the mean shift of the joints visible in
both poses (:func:`keytrack.pairs.pose_motion`, the estimate of ``motion="velocity"``), and
starts at the pose centre. A candidate is moved by (the track's predicted position − the
observation at the candidate's frame), keypoints and box alike.

*Initialisation.* A track's first observation gives its position, velocity 0 (the candidate is
not moved); the second gives the velocity (displacement / timesteps) by two-point
initialisation, with the covariance of that estimate. A track moving at constant velocity is
then predicted exactly, whatever the noise settings.

*Missed frames.* The filter keeps each track's state at its last observation; a prediction
``Δ`` timesteps ahead is ``position + Δ · velocity`` and changes nothing. When a track is seen
again after a gap of ``g`` timesteps, the filter follows OC-SORT's observation-centric
re-update (ORU; Cao et al., "Observation-Centric SORT", CVPR 2023): instead of updating the
coasted state once, it runs ``g`` predict / update steps from the last observation along a
virtual trajectory linearly interpolated between the last observation and the new one, so the
velocity follows what was observed rather than what was assumed while the track was unseen.
OC-SORT's other parts (observation-centric momentum in the association cost, recovery by the
last observation) are not used: the scorer gives the cost.

Only ratios of the noises change the estimates (the gain); the defaults take the measurement
and the per-timestep acceleration variance equal (``R = q = 1``), chosen a priori.
"""

from __future__ import annotations

import numpy as np

from keytrack.pairs import pose_centres, pose_motion

__all__ = ["KalmanTracks"]

#: constant-velocity transition over one timestep, state ``[position, velocity]``
_F = np.array([[1.0, 1.0], [0.0, 1.0]])
#: white acceleration over one timestep: ``G Gᵀ`` with ``G = [1/2, 1]``
_G = np.array([[0.25, 0.5], [0.5, 1.0]])


class KalmanTracks:
    """Constant-velocity Kalman filters of the tracks of one video (see the module description).

    Args:
        measurement_noise: ``R``, variance of an observed position.
        process_noise: ``q``, variance of the acceleration per timestep (``Q = q G Gᵀ``).
    """

    def __init__(self, measurement_noise: float = 1.0, process_noise: float = 1.0):
        self.r = float(measurement_noise)
        self.q = float(process_noise)
        self.ids = np.zeros(0, np.int64)
        self.index = np.zeros(0, np.int64)  # [T] frame index of the last observation
        self.mean = np.zeros((0, 2, 2))  # [T, (position, velocity), (x, y)] at the last observation
        self.cov = np.zeros((0, 2, 2))  # [T, 2, 2] shared by x and y
        self.observed = np.zeros((0, 2))  # [T, 2] the last observation
        self.keypoints = np.zeros((0, 15, 3))  # [T, 15, 3] the last observed pose
        self.count = np.zeros(0, np.int64)  # [T] observations so far

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """``[K]`` the row of each track id, -1 for a track without a filter."""
        ids = np.asarray(ids, np.int64)
        if not len(self.ids):
            return np.full(len(ids), -1, np.int64)
        same = ids[:, None] == self.ids[None, :]
        return np.where(same.any(axis=1), np.argmax(same, axis=1), -1)

    def predict(self, ids: np.ndarray, index: int) -> np.ndarray:
        """``[K, 2]`` where the tracks ``ids`` (each with a filter) are predicted at frame ``index``."""
        r = self.rows(ids)
        if (r < 0).any():
            raise KeyError(f"KalmanTracks.predict: no filter for track {np.asarray(ids)[r < 0][0]}")
        steps = (int(index) - self.index[r]).astype(np.float64)
        return self.mean[r, 0] + steps[:, None] * self.mean[r, 1]

    def velocity(self, ids: np.ndarray) -> np.ndarray:
        """``[K, 2]`` the tracks' filtered velocity per timestep (0 for a track without a filter)."""
        r = self.rows(ids)
        return np.where((r >= 0)[:, None], self.mean[r, 1], 0.0)

    def forget(self, before: int) -> None:
        """Drops the tracks last observed before frame ``before`` (no longer in the window)."""
        keep = self.index >= int(before)
        if not keep.all():
            for name in ("ids", "index", "mean", "cov", "observed", "keypoints", "count"):
                setattr(self, name, getattr(self, name)[keep])

    def observe(self, index: int, ids: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Updates the filters of the tracks ``ids`` (unique) with their poses ``keypoints``
        ``[K, 15, 3]`` at frame ``index`` (later than their last observation), starting a filter
        for a new track; returns the observations ``[K, 2]``."""
        ids, keypoints = np.asarray(ids, np.int64), np.asarray(keypoints, np.float64)
        r = self.rows(ids)
        old, new = np.flatnonzero(r >= 0), np.flatnonzero(r < 0)
        z = np.zeros((len(ids), 2))
        z[new] = np.nan_to_num(pose_centres(keypoints[new]))
        ro = r[old]
        gap = int(index) - self.index[ro]
        if (gap < 1).any():
            raise ValueError(f"KalmanTracks.observe: frame {index} is not after the last observation")
        z[old] = self.observed[ro] + pose_motion(keypoints[old], self.keypoints[ro], np.ones(len(old)))
        second = self.count[ro] == 1
        self._two_point(ro[second], z[old[second]], gap[second])
        self._re_update(ro[~second], z[old[~second]], gap[~second])
        self.index[ro], self.observed[ro], self.keypoints[ro] = int(index), z[old], keypoints[old]
        self.count[ro] += 1
        self._start(ids[new], int(index), z[new], keypoints[new])
        return z

    # -- the steps -------------------------------------------------------------------------

    def _start(self, ids: np.ndarray, index: int, z: np.ndarray, keypoints: np.ndarray) -> None:
        """New filters at the first observation ``z``: velocity 0 (unknown until the second)."""
        k = len(ids)
        mean = np.stack([z, np.zeros_like(z)], axis=1)
        cov = np.zeros((k, 2, 2))
        cov[:, 0, 0] = self.r
        self.ids = np.concatenate([self.ids, ids])
        self.index = np.concatenate([self.index, np.full(k, index, np.int64)])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.observed = np.concatenate([self.observed, z])
        self.keypoints = np.concatenate([self.keypoints, keypoints])
        self.count = np.concatenate([self.count, np.ones(k, np.int64)])

    def _two_point(self, rows: np.ndarray, z: np.ndarray, gap: np.ndarray) -> None:
        """Two-point initialisation at the second observation ``z``, ``gap`` timesteps after the
        first: position ``z``, velocity the displacement per timestep, and their covariance."""
        g = gap.astype(np.float64)
        self.mean[rows, 0] = z
        self.mean[rows, 1] = (z - self.observed[rows]) / g[:, None]
        self.cov[rows] = self.r * np.stack(
            [np.stack([np.ones_like(g), 1 / g], -1), np.stack([1 / g, 2 / g**2], -1)], axis=1
        )

    def _re_update(self, rows: np.ndarray, z: np.ndarray, gap: np.ndarray) -> None:
        """``gap`` predict / update steps from the last observation along the virtual trajectory
        linearly interpolated to ``z`` (OC-SORT's ORU; one ordinary step for ``gap = 1``)."""
        last = self.observed[rows]
        for step in range(1, int(gap.max(initial=0)) + 1):
            on = step <= gap
            at = rows[on]
            mean, cov = _F @ self.mean[at], _F @ self.cov[at] @ _F.T + self.q * _G
            virtual = last[on] + (z[on] - last[on]) * (step / gap[on])[:, None]
            s = cov[:, 0, 0] + self.r  # [K] innovation variance
            gain = cov[:, :, 0] / s[:, None]  # [K, 2]
            self.mean[at] = mean + gain[:, :, None] * (virtual - mean[:, 0])[:, None, :]
            self.cov[at] = cov - gain[:, :, None] * cov[:, None, 0, :]
