"""Toy datasets: synthetic VGGSound-, AudioSet- and EPIC-like sets as real mp4s and official lists."""
