"""Evaluation runs: specs, observation layouts, one module per run kind (states, pixels, planning), the runs
store and sweeps. Above datasets and algorithms, below leaderboards, web and the CLI (DESIGN.md, "Layout")."""
