"""Console scripts of densehybrid_ros."""
