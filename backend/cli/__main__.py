"""`python -m backend.cli` runs the `saferlhf` command line."""

from backend.cli import main

main()
