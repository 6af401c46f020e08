"""The one error of routing."""


class RoutingError(Exception):
    """A request the matchmaker cannot carry out (unknown id, wrong state)."""
