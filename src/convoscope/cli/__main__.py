"""`python -m convoscope.cli`: the console script."""

from convoscope.cli import main

main()
