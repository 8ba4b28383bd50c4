"""Environments: ``families`` (the kinds of env, which ids each claims and what makes them), ``registry``
(checking ids, choosing the driver), ``spec`` (what a policy needs to know of an env), and the adapters:
``jax_envs`` and ``jax_tasks`` (JAX-native, fused driver), ``gym_envs`` and ``atari`` (host driver),
``envpool_xla``. Import from the submodules; this package imports nothing, so that a lower layer can use
``registry`` without loading the adapters."""
