"""`python -m convoscope`: the console script."""

from convoscope.cli import main

main()
