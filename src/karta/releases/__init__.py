"""Releases: packing a harness app into an archive, and extracting one safely."""
