"""Kelpie vs PM2 benchmark (bench/run.py is its entry point; see bench/README.md)."""
