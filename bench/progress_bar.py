"""The benchmarks' progress bar (tqdm, from the sim extra) on long runs: on a terminal only,
and nothing at all without tqdm."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: int, unit: str = "req", quiet: bool = False):
        self.bar = None
        if not quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, smoothing=0.05)
            except ImportError:
                pass

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
