from keytrack.lightning.matching import MatchingModule
from keytrack.lightning.track_matching import TrackMatchingModule

__all__ = ["MatchingModule", "TrackMatchingModule"]
