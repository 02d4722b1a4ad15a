"""Playground: synthetic data for CPU runs (mini-CoIN)."""
