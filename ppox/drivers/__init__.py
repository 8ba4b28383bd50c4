"""Drivers: the ways of running PPO behind one protocol (``base``): ``fused`` (JAX-native envs, one
compiled program) and ``host`` (Gymnasium envs stepped from Python, optionally on Ray workers)."""
