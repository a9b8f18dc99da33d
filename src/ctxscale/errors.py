"""The one exception type the CLI turns into a single error line and exit status 2."""


class CtxscaleError(Exception):
    """Bad user input (config, table, file, name): the message names what is wrong."""
