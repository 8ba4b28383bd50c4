"""What a run keeps on disk: checkpoints, the run folder and its lock, the run log (metrics.csv, TensorBoard)."""
