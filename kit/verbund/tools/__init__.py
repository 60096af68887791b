"""Operator tools around the runtime: the ``verbund`` command line, demo data, integrator administration.

Nothing in a running service imports this package."""
