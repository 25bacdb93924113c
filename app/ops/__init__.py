"""Use cases the UI and the CLI both call; each returns plain results."""
