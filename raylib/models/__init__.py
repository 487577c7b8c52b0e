"""Tactic generator backends (HF, vLLM), prompt format, the tiny built-in model, encoder and EBM."""
