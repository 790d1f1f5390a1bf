"""Aligners: where each symbol is spoken, as integer mel-frame durations."""

from ttskit.align.base import Aligner, AlignmentRejected, FrameAlignment, TimedSymbol, to_frames

__all__ = ["AlignmentRejected", "Aligner", "FrameAlignment", "TimedSymbol", "to_frames"]
