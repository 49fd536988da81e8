"""A roost cluster on one machine: nodes and Redis each in a Linux network namespace."""
