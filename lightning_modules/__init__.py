from lightning_modules.matching import MatchingModule

__all__ = ["MatchingModule"]
