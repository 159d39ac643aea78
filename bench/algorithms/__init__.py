"""Learning algorithms (BC, AWAC, IQL, CQL, VAL, PTP, ...), one module each; arriving with the harness."""
