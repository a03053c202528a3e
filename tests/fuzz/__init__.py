"""Coverage-guided fuzz targets (atheris) for every parser that reads bytes from the network.

:mod:`tests.fuzz.targets` holds the targets and their seed corpora; :mod:`tests.fuzz.run` runs one
target under libFuzzer; ``tests/test_fuzz.py`` runs each for a bounded time and replays the
regression inputs in ``tests/data/regressions/``.
"""
