"""Speed tools: densehybrid-bench and its subcommands, one timing harness."""
