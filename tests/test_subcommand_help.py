"""`--help` of the reproduce harnesses names the user-tool subcommands, so a user finds `evaluate`, `upscale` and
`stylize` from the command they already know."""
from __future__ import annotations

import pytest

from bench.sr import cli as sr
from bench.style import cli as style


@pytest.mark.parametrize("module, subcommands", [(sr, ("evaluate", "upscale")), (style, ("evaluate", "stylize"))])
def test_main_help_names_the_subcommands(module, subcommands, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    prog = module.__name__.removesuffix(".cli")  # the command: python -m bench.sr
    for sub in subcommands:
        assert f"python -m {prog} {sub} " in text, (sub, text[-800:])
    # each named subcommand really dispatches: its own --help exits 0 and names it
    for sub in subcommands:
        with pytest.raises(SystemExit) as e:
            module.main([sub, "--help"])
        assert e.value.code == 0
        assert sub in capsys.readouterr().out
