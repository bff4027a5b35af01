"""The exception tree. Library code raises these; only cli.py turns them into exit codes.

ConfigError is the user's mistake (exit 2). Outside faults (SourceError, MailError) may go away on
their own and are retried or recorded (exit 1 when they remain). StoreError is the database.
"""

from __future__ import annotations


class WatcherError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(WatcherError):
    """The configuration (or a command's arguments) is wrong: the user must change something."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        self.detail = message
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class SourceError(WatcherError):
    """NCBI (or a feed host) did not give a usable answer after the allowed retries."""


class Unreachable(SourceError):
    """The host never answered (connection refused, DNS, timeouts) through all the retries."""


class RecordError(SourceError):
    """One record of an answer cannot be read (it is not an object, or names nothing to know it
    by): it is skipped and reported, and the rest of the answer kept."""


class Interrupted(WatcherError):
    """A shutdown was asked for while waiting (backoff, rate limit); the job stops unfinished,
    with nothing of it committed."""


class ResponseTooLarge(SourceError):
    """An answer grew past the size limit ([ncbi] max_response_mb); reading stopped there."""


class QueryError(SourceError):
    """NCBI rejected a search (an <ERROR> body): retrying will not help, the query must change."""


class FeedError(SourceError):
    """An RSS URL answered with something that is not a feed."""


class MailError(WatcherError):
    """A message could not be handed to the mail server.

    transient errors (connection refused, 4xx, a dropped connection) leave the digest pending for
    the next run; permanent ones (5xx for a recipient) are recorded against that recipient.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent

    @classmethod
    def unusable_folder(cls, what: str, path: object, exc: OSError) -> MailError:
        """A folder we write mail into (the maildir, `digest --out`) cannot be made or written:
        say which path failed and why, instead of the bare OSError's class name."""
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, (NotADirectoryError, FileExistsError)):
            reason += " (a file stands where a folder is needed)"
        failed = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(path) else ""
        return cls(f"cannot use {path} as {what}: {failed}{reason}")


class StoreError(WatcherError):
    """The store cannot be opened, migrated or is held by another process."""
