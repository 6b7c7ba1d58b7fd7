"""CPU threads that behave on a shared machine.

torch runs its CPU kernels on OpenMP threads. By default (``OMP_WAIT_POLICY`` unset) a thread
that finishes its share of an operation *spins* for milliseconds waiting for the next one. On
cores that other processes also want, a spinning thread burns the time slice that the thread
it waits for needs, so every parallel region, and there are hundreds per forward pass, waits
for the scheduler: on 2 cores shared with other CPU-bound processes the engine ran 4x slower
than with sleeping threads, and many small batches suffered more than a few large ones
(``benchmarks/engine_vs_st.py --background-load``; ``docs/speed.md``).

OpenMP reads the policy once, when torch loads its OpenMP runtime, so crossrank asks for
``OMP_WAIT_POLICY=PASSIVE`` when it is imported before torch and the variable is unset (an
explicit setting always wins). If torch was imported first, the engine logs how to set it.
onnxruntime's own thread pool gets the same treatment per session (``allow_spinning=0``),
OpenVINO's TBB workers already sleep when idle.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["WAIT_POLICY", "prefer_passive_openmp", "spinning_hint"]

logger = logging.getLogger(__name__)

WAIT_POLICY = "OMP_WAIT_POLICY"
_HINTED = False


def prefer_passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if it is unset and torch is not loaded yet.

    Returns whether the setting was made (it then applies to torch when it loads).
    """
    if WAIT_POLICY in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY] = "PASSIVE"
    return True


def spinning_hint(device: str) -> str | None:
    """Why torch's CPU threads may spin in this process, and what to do; ``None`` if they
    sleep (or the model is not on the CPU). Logged once per process at INFO level."""
    global _HINTED
    if not device.startswith("cpu") or os.environ.get(WAIT_POLICY, "").upper() == "PASSIVE":
        return None
    policy = os.environ.get(WAIT_POLICY)
    hint = (
        f"torch's OpenMP threads spin while they wait ({WAIT_POLICY}="
        f"{policy or 'unset, torch was imported before crossrank'}); on a machine shared with "
        f"other busy processes the engine runs several times faster with {WAIT_POLICY}=PASSIVE "
        "in the environment before Python starts (or `import crossrank` before torch)"
    )
    if not _HINTED:
        _HINTED = True
        logger.info(hint)
    return hint
