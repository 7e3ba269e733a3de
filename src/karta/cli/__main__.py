"""`python -m karta.cli` runs the `karta` command."""

from karta.cli.main import main

main()
