"""Scores, normalization and leaderboard aggregation."""

from bench.leaderboards.scores import normalized_score

__all__ = ["normalized_score"]
