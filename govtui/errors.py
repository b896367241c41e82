"""Errors the services raise; the CLI and the TUI turn them into one clear message."""


class GovtuiError(Exception):
    """Any refusal or failure that a person should read; the CLI exits with `exit_code`."""

    exit_code = 2


class InputError(GovtuiError):
    """The input is malformed: a bad value, a bad file, a name that cannot be used."""


class NotFoundError(GovtuiError):
    """A named client, project, scope, contractor, operator or grant does not exist."""


class PolicyError(GovtuiError):
    """The request is well formed but a rule forbids it (roles, four eyes, pause)."""


class ConflictError(GovtuiError):
    """The change collides with existing data (a duplicate name, a concurrent change)."""


class ConfigurationError(GovtuiError):
    """The environment is not fit to run in (no database, an unsafe keyring backend)."""


class AfterCommitError(GovtuiError):
    """The change was committed, but something that follows a commit (a keyring write, the
    audit checkpoint) failed: not "nothing written", so not exit code 2."""

    exit_code = 1
