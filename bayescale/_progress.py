"""Progress in words for logs and pipes: one line per phase of a fit with its elapsed time.

In a terminal the sampler's own progress bar shows; when stderr is not a terminal (a log file, a pipe, a batch
job), nothing would be printed for minutes, so each phase says when it starts and how long it took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Announces phases on stderr when `enabled` (progress asked for and stderr not a terminal)."""

    def __init__(self, progress: bool, what: str = "fit"):
        self.enabled = bool(progress) and not sys.stderr.isatty()
        self.what = what
        self.start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        t = time.perf_counter()
        print(f"bayescale {self.what}: {name} ...", file=sys.stderr, flush=True)
        yield
        now = time.perf_counter()
        done = f"bayescale {self.what}: {name} done in {now - t:.1f} s ({now - self.start:.1f} s in all)"
        print(done, file=sys.stderr, flush=True)
