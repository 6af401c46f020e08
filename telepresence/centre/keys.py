"""The Redis keys of a centre: every name in one place."""

PREFIX = "tp:"
LEADER = PREFIX + "leader"  # the lease: the leading node's incarnation, with a time to live
INBOX = PREFIX + "inbox"  # stream: what the doors' sockets said, in the order the leader applies it
SNAPSHOT = PREFIX + "snapshot"  # the centre's state as of the last commit
APPLIED = PREFIX + "applied"  # the last inbox entry that snapshot includes
STATUS = PREFIX + "status"  # /api/status as of the last commit (JSON)
METRICS = PREFIX + "metrics"  # the leader's centre-wide metrics as of the last commit (Prometheus text)


def outbox(node: str) -> str:
    """The stream of messages for the sockets (and rooms) one door holds."""
    return f"{PREFIX}out:{node}"


def alive(node: str) -> str:
    """A door's heartbeat: its incarnation, with a short time to live."""
    return f"{PREFIX}alive:{node}"
