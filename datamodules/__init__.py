from datamodules.pose_pairs import PosePairDataModule

__all__ = ["PosePairDataModule"]
