"""The error of a chapter run, importable without the runner (the command line catches it before any run)."""


class ChapterFailed(RuntimeError):
    """A chapter raised while being executed, or ran but is not fit to publish; the message names the chapter."""
