from lightning_modules.matching import MatchingModule
from lightning_modules.track_matching import TrackMatchingModule

__all__ = ["MatchingModule", "TrackMatchingModule"]
