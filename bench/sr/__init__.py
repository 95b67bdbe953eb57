"""The super-resolution harness (`python -m bench.sr`, the paper's Sec. 4.2) and `bench.sr evaluate`, which
scores a user's SR method on the harness's own route; cli.py dispatches the subcommands."""
