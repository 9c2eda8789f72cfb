"""The gate's exit codes and its usage-or-data error.

::

    raise CompareError("the runs have no cell in common")   # exit EXIT_ERROR
"""

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2


class CompareError(Exception):
    """A usage or data error: exit code 2. The message is fit to show as is."""
