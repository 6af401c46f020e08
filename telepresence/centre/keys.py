"""The Redis keys of a centre: every name in one place."""

PREFIX = "tp:"
LEADER = PREFIX + "leader"  # the lease: the leading node's incarnation, with a time to live
INBOX = PREFIX + "inbox"  # stream: what the doors' sockets said, in the order the leader applies it
STEPS = PREFIX + "steps"  # stream: each committed step of the leader (which entries, at what time)
SNAPSHOT = PREFIX + "snapshot"  # the centre's state after some step (pickled with that step's id)
STATUS = PREFIX + "status"  # /api/status as of the last commit (JSON)
METRICS = PREFIX + "metrics"  # the leader's centre-wide metrics (Prometheus text), refreshed each second


# Stream bounds (approximate trimming on append): far beyond what a leader leaves unread or a
# door falls behind; a bound on what a dead leader or door leaves in Redis.
INBOX_MAXLEN = 100_000
OUTBOX_MAXLEN = 10_000


def outbox(node: str) -> str:
    """The stream of messages for the sockets (and rooms) one door holds."""
    return f"{PREFIX}out:{node}"


def alive(node: str) -> str:
    """A door's heartbeat: its incarnation, with a short time to live."""
    return f"{PREFIX}alive:{node}"
