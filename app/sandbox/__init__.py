"""Local imitations of each provider, served over real HTTP on 127.0.0.1 or in-process."""
