"""The self-tests of `python3 bench/run.py --self-test`."""
