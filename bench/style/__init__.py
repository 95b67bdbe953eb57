"""The style-transfer harness (`python -m bench.style`, the paper's Sec. 4.1, Fig. 5, Table 1) and
`bench.style evaluate`, which scores a user's stylizer the same way; cli.py dispatches the subcommands."""
