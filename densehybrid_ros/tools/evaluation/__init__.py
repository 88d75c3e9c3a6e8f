"""Evaluation tools: densehybrid-eval and densehybrid-eval-families."""
