"""The errors of a chapter run, importable without the runner (the command line catches them before any run)."""


class ChapterFailed(RuntimeError):
    """A chapter raised while being executed, or ran but is not fit to publish; the message names the chapter."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that the command unwinds (and logs) as for Ctrl-C."""
