"""A trained policy outside training: loading it (``policy``) and running it for episodes (``evaluation``)."""
