"""Training: the densehybrid-train script, its data, loss and end-of-run report."""
