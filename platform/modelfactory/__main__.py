"""`python -m modelfactory ...` is the `modelfactory` command."""

from modelfactory.cli import main

main()
