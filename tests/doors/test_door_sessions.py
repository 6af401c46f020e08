"""telepresence.door_sessions on its own, with real aiortc peers: what a door does wrong on a
session's way out never leaves the session's peer open."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from media.answer import IceGathering
from telepresence.config import Settings
from telepresence.door_sessions import DoorSessions, Opened, Session
from tests.doors.whip import viewer


class _BrokenUndoDoor:
    """A door whose undo fails: a bug in what a session fed must not cost the peer its close."""

    roles = ("viewer",)
    publishes = False

    def __init__(self) -> None:
        self.undone = 0

    def token_required(self) -> bool:
        return False

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        async def undo() -> None:
            self.undone += 1
            raise RuntimeError("what the session fed is in a bad state")

        return Opened(undo=undo)


async def test_a_session_whose_undo_fails_still_closes_its_peer():
    book = DoorSessions(
        Settings(),
        server_ice_servers=lambda _name: [],
        ice_policy="all",
        gathering=IceGathering(addresses=("127.0.0.1",)),
    )
    door = _BrokenUndoDoor()
    try:
        async with viewer() as peer:
            session = book.reserve("/whep/test", None)
            await book.answer(door, session, await peer.offer())
            await book.end(session, "a test")
            assert door.undone == 1
            assert session.pc is not None and session.pc.connectionState == "closed"
            assert not book.sessions
    finally:
        await book.close()
