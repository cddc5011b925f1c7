"""Errors that bayescale raises on bad input: each names the file/field or column/row/value at fault."""


class BayescaleError(ValueError):
    """Base class of every error bayescale raises on bad input."""


class LawFileError(BayescaleError):
    """A law file is malformed: the message names the file, the field and the problem."""


class UnknownLawError(BayescaleError, KeyError):
    """No law of that name in the catalogue and no such file."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DataError(BayescaleError):
    """The runs table cannot be used: the message names the column, row and value."""


class FitFileError(BayescaleError):
    """A saved fit cannot be read."""
