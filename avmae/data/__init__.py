"""Data stages: URL lists, toy datasets, download, feature extraction, loading."""
