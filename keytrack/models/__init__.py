"""Matching networks that score pose pairs (Pose Entailment, KeyTrack §3.2)."""

from keytrack.models.transformer import TransformerConfig, TransformerMatchingNetwork, parameter_breakdown

__all__ = ["TransformerConfig", "TransformerMatchingNetwork", "parameter_breakdown"]
