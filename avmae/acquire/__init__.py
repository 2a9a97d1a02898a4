"""Acquisition: dataset lists, downloads (yt-dlp, whole videos), verification, shards, availability."""
