"""The one exception type the CLI turns into a one-line cause instead of a traceback."""


class StreamRecError(Exception):
    """A failure whose message is meant for the user: it names what is wrong and where."""
