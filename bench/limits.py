"""Open-file limits: every socket is a file descriptor, and 10,000 of them pass the usual 1024."""

from __future__ import annotations

import resource


def raise_open_files() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it); answer
    the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft
