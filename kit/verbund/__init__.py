"""Verbund's shared kit. Import submodules directly; this package imports
nothing so that ``verbund run`` can monkey-patch before anything else loads."""
