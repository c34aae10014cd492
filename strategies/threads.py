"""How many threads the engine's parallel numba kernels use in this process.

A Ray task that reserves one CPU must run on one: numba's default is every core, so two
one-CPU tasks on a two-core node would put four busy threads on two cores, and small kernel
calls pay for waking a thread pool on each call (measured: a one-set ``run_batch`` on ten
years of bars took 32 ms with two threads against 3 ms with one).
"""

from __future__ import annotations

import numba


def use_threads(count: int) -> int:
    """Let the engine's kernels use ``count`` threads (clamped to 1..numba's maximum);
    return the number set."""
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at import
    chosen = max(1, min(int(count), most))
    numba.set_num_threads(chosen)
    return chosen
