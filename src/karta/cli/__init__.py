"""The `karta` command line (typer + rich)."""
