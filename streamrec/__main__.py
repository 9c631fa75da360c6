"""`python -m streamrec`: the same command line as the `streamrec` script."""

from streamrec.cli.main import main

main()
