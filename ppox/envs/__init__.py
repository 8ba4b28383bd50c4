"""Environments: ``registry`` (which ids exist, which driver runs them), ``spec`` (what a policy needs to
know of an env), and the adapters ``jax_envs`` (gymnax, fused driver) and ``gym_envs`` (Gymnasium, host
driver). Import from the submodules; this package imports nothing, so that a lower layer can use
``registry`` without loading the adapters."""
