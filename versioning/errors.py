"""The versioning layer's error hierarchy. Protocol layers map these to their codes."""

from __future__ import annotations


class VersioningError(Exception):
    """Base of every error the domain raises on purpose."""


class NotFound(VersioningError):
    pass


class RepoNotFound(NotFound):
    pass


class BranchNotFound(NotFound):
    pass


class CommitNotFound(NotFound):
    pass


class ObjectNotFound(NotFound):
    pass


class UploadNotFound(NotFound):
    pass


class TagNotFound(NotFound):
    pass


class OpenCommitNotFound(NotFound):
    pass


class TrashNotFound(NotFound):
    """Nothing of that name in the trash (never deleted, restored, or expired)."""


class PipelineNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class DatumNotFound(NotFound):
    pass


class RefNotFound(NotFound):
    """A ref names no branch or commit (or an ancestor that does not exist)."""


class InvalidRef(VersioningError):
    """A ref that does not parse."""


class InvalidCursor(VersioningError):
    """A pagination cursor this listing did not hand out."""


class AmbiguousRef(VersioningError):
    """A commit prefix that matches more than one commit."""


class AlreadyExists(VersioningError):
    pass


class RepoExists(AlreadyExists):
    pass


class BranchExists(AlreadyExists):
    pass


class TagExists(AlreadyExists):
    pass


class PipelineExists(AlreadyExists):
    pass


class InvalidSpec(VersioningError):
    """A pipeline spec refused: `field` is the culprit's dotted path
    (`input.pfs.glob`, "" for the document itself)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class InvalidName(VersioningError):
    pass


class BranchNotEmpty(VersioningError):
    pass


class UnmergedCommits(VersioningError):
    """Deleting the branch would leave commits that only the trash keeps."""

    def __init__(self, message: str, commits: int = 0) -> None:
        super().__init__(message)
        self.commits = commits


class DefaultBranchInUse(BranchNotEmpty):
    """The default branch outlives every other branch of its repo."""


class ReadOnlyRef(VersioningError):
    """A write aimed at something immutable, such as a commit snapshot."""


class PreconditionFailed(VersioningError):
    pass


class CorruptData(VersioningError):
    """Stored bytes do not match their content address."""


class ContentGone(CorruptData):
    """A write re-used a body that garbage collection removed meanwhile."""


class ContentPurged(VersioningError):
    """A read (or a new write) of a body purged from the repo (purge.py):
    permanent, and the message names the purge."""


class ConcurrentUpdate(VersioningError):
    """A compare-and-set lost too many times in a row."""


class Busy(VersioningError):
    """Refused for now, because of other work in progress; retrying later works."""


class HeadMoved(VersioningError):
    """A compare-and-set on a branch head found another head than expected."""


class MergeConflict(VersioningError):
    """A merge or revert would overwrite changes on both sides; nothing was written."""

    def __init__(self, message: str, conflicts: list[str] | None = None) -> None:
        super().__init__(message)
        self.conflicts = conflicts or []  # "path<TAB>kind" each


class JobActive(VersioningError):
    """The pipeline has a job running already (one at a time: later triggers
    are coalesced into the next job)."""


class LeaseLost(VersioningError):
    """A worker reported on a datum attempt it no longer holds (its lease
    expired, or the job was stopped): its result is dropped."""


class DatumNotRestartable(VersioningError):
    pass


class JobEnded(VersioningError):
    """The job has ended; it cannot be stopped or changed."""
