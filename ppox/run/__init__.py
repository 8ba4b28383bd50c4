"""One training run, top to bottom: ``training`` (train, resume) over ``loop`` (the run loop every driver uses)."""
