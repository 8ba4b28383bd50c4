"""Plain helpers with no knowledge of RL: durable file writes, safetensors-style tensor files, signals."""
