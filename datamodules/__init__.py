from datamodules.pose_pairs import PosePairDataModule
from datamodules.track_lists import TrackListDataModule

__all__ = ["PosePairDataModule", "TrackListDataModule"]
