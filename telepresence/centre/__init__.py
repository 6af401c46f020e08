"""One contact centre on many processes, through Redis (``telepresence serve --redis URL``).

Every process is a :class:`~telepresence.centre.door.Door`: it holds its browsers' sockets
and the media rooms of the calls it hosts. One process at a time is also the
:class:`~telepresence.centre.leader.Leader`: it holds a lease in Redis and runs the one
:class:`~telepresence.switchboard.Switchboard` (the pure Matchmaker and its shell) of the
whole centre. Doors append what their sockets say to one inbox stream; the leader applies
the entries in order and commits, in one atomic step, the centre's new state together with
every message it caused, each to the stream of the door that holds the socket. A leader
that dies before a commit leaves no trace, so its successor applies the same entries once
more; after a commit, the successor starts from that state. docs/scale-out.md has the
picture and what happens on each failure.
"""
