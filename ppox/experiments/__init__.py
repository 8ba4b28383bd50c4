"""Many runs and what they show: sweeps, Optuna tuning, the REINFORCE-to-PPO ladder, plots."""
