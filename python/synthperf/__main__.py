"""``python -m synthperf`` runs the CLI."""
from .cli import main

main()
