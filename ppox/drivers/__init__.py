"""Drivers: fused (JAX-native envs, one jitted program) and host (Gymnasium envs stepped from Python)."""
