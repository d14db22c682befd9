"""Errors a user can act on.

Anything raised as a `PharmaflowError` is shown by the CLI as one line (no traceback): it means
the input or the configuration is wrong, not that pharmaflow has a bug.
"""


class PharmaflowError(Exception):
    """A problem the user can fix: bad argument, missing file, refused schema change."""


class IncompatibleSchemaError(PharmaflowError):
    """A contract change that would break existing readers or writers."""


# What an operator can do about the operating system refusing a write. The lake commits by
# manifest, so any of these mid-run leaves only uncommitted debris, which the next run removes.
_OS_ADVICE = {
    "ENOSPC": "the disk is full; free space and re-run (the next run resumes where this stopped)",
    "EDQUOT": "the disk quota is used up; free space and re-run (the next run resumes)",
    "EROFS": "the file system is read-only; use a writable --data-dir (sql and trace can read "
    "a read-only copy)",
    "EACCES": "permission denied; run as the data dir's owner or pick another --data-dir",
    "EPERM": "operation not permitted; run as the data dir's owner or pick another --data-dir",
    "ENOTDIR": "a path that should be a folder is a file; check --data-dir",
    "EMFILE": "too many open files; raise the limit (ulimit -n) or use fewer --workers",
}
# Libraries that report a full disk without an errno (DuckDB, Arrow): matched on their text.
_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded", "[errno 28]")


def says_disk_full(text: str) -> bool:
    """Whether an error's text is the C library's full-disk message (errno ENOSPC/EDQUOT)."""
    lowered = text.lower()
    return any(marker in lowered for marker in _NO_SPACE_TEXT)


def os_error_line(exc: BaseException) -> str | None:
    """One line for an operating-system failure anywhere in `exc`'s chain (a disk that filled
    while a worker thread wrote, say), or None if it is not one."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            name = errno.errorcode.get(current.errno, "")
            if name in _OS_ADVICE:
                where = f" ({current.filename})" if current.filename else ""
                return f"{_OS_ADVICE[name]}{where}"
        if says_disk_full(str(current)):
            return _OS_ADVICE["ENOSPC"]
        current = current.__cause__ or current.__context__
    return None
