"""`python -m streamrec`: the same command line as the `streamrec` script."""

from streamrec.cli.main import main

if __name__ == "__main__":  # a spawned worker (train --nproc) re-imports the main module: run nothing then
    main()
