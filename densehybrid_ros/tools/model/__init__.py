"""Model tools: import, export and segment image files."""
