from keytrack.datamodules.pose_pairs import PosePairDataModule
from keytrack.datamodules.track_lists import TrackListDataModule

__all__ = ["PosePairDataModule", "TrackListDataModule"]
