"""Command-line programs: memgpt-train and memgpt-sample."""
