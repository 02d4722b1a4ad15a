"""LLaVA-1.5-compatible training and evaluation on transformers' native Llava classes."""
