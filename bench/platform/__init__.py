"""Settings, database, environments, harness, executors and artifacts: what the parts run on."""
