"""Errors of the control plane."""


class InvalidStateError(Exception):
    """A call (or session) was asked to make a move its state does not allow."""
