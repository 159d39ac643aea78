"""bench: versioned trajectory datasets and offline-then-online evaluation for robot learning."""

__version__ = "0.1.0"
