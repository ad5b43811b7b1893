"""Errors raised on bad input files; every message names ``file:line``."""


class DataError(ValueError):
    """A problem in a user's input file, located by path and 1-based line number.

    ``str(error)`` reads ``path:line: message`` (``path: message`` when no line
    applies), the form compilers use, so editors and terminals can jump to it.
    """

    def __init__(self, path, line, message):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
