"""The supervisor's engine: pure decisions (``decide``), per-daemon runtime state, runners per
daemon kind, stopping, and the OS seam the supervisor acts through."""
