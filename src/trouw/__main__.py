"""`python -m trouw` runs the command line."""

from trouw.cli import main

main()
