"""The domain's one clock: wall time in microseconds since the epoch.

Commit times, upload and part times, gc's touch stamps and idle limits are all
compared with each other, so they come from this one function.
"""

from __future__ import annotations

import time


def now_us() -> int:
    return time.time_ns() // 1000
