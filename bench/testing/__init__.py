"""Helpers for tests and benchmarks: real local servers and small generated datasets."""
