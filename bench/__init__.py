"""Benchmarks: `python -m bench.<name>` prints numbers (SPEC §10); tests never time things."""
