"""Interoperability with other implementations (the reference MPLP checkpoints)."""
