"""Scores, normalization and leaderboard aggregation; arriving with the benchmark data and the harness."""
