"""The `streamrec` command line, the top layer: every command is a thin wrapper around a lower layer."""
