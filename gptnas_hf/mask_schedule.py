"""The mask-rate schedule of the paper's Eq. 3 (used by the pipeline and by the search)."""

from __future__ import annotations

DEFAULT_INITIAL_MASK_RATE = 0.4  # the paper's best (Table 4)


def mask_rate_at(iteration: int, max_iterations: int, initial_mask_rate: float = DEFAULT_INITIAL_MASK_RATE) -> float:
    """``rate_t = rate_0 - (t / T) * rate_0``: the rate decays linearly to 0 at ``t = T``."""
    if max_iterations <= 0:
        raise ValueError(f"max_iterations must be positive, got {max_iterations}")
    if not 0 <= iteration <= max_iterations:
        raise ValueError(f"iteration must lie in [0, {max_iterations}], got {iteration}")
    if not 0.0 <= initial_mask_rate <= 1.0:
        raise ValueError(f"initial_mask_rate must lie in [0, 1], got {initial_mask_rate}")
    return initial_mask_rate - iteration / max_iterations * initial_mask_rate
