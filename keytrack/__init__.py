"""keytrack: multi-person pose tracking from keypoints alone (KeyTrack, Snower et al., CVPR 2020)."""

from keytrack.poses import Dataset, Frame, PoseTable, Video
from keytrack.skeleton import JOINTS, NUM_JOINTS

__version__ = "0.1.0"
__all__ = ["Dataset", "Frame", "PoseTable", "Video", "JOINTS", "NUM_JOINTS", "__version__"]
