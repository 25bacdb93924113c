"""A simulated year of a small business on the sandboxes (issue 21, point 7): see bench/year/__main__.py."""
