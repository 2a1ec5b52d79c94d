"""bass benchmarks: commands that print tables, never tests.

Each benchmark compares a measurement with a floor or a peer measured in the same run
(a ratio survives a noisy machine), repeats it and reports the median with min and max,
and prints the machine it ran on. Run from the repository root, e.g.::

    python -m bench.builder_bench            # the builder: overhead, export, log throughput
    python -m bench.builder_bench --quick    # a ~30 s smoke run
"""
