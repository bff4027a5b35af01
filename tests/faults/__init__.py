"""The fault matrix (issue 16): each cell a fault a long-running watcher meets, and the proof
that every paper that matched is delivered exactly once after it clears."""
