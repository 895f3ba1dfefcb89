"""The exceptions ci-load raises on purpose.

Everything here is an *expected* failure: bad input, a missing tool, a docker
command that failed. The task layer turns each into one line and a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class CiLoadError(Exception):
    """A failure the user can act on; ``str()`` is the whole message."""


class ConfigError(CiLoadError):
    """A setting, flag or input file is wrong."""


class CommandError(CiLoadError):
    """A docker or compose command could not run or exited non-zero."""

    def __init__(self, message, argv=(), exit_code=None, tail=""):
        super().__init__(message)
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.tail = tail

    @property
    def last_line(self) -> str:
        """The command's last line of output, where docker and compose say why."""
        lines = self.tail.strip().splitlines()
        return lines[-1] if lines else "no output"
