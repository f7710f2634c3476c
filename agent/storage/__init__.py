"""Storage backends: where repository objects live (local folder, S3)."""
