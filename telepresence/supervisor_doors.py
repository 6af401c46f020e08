"""Supervisors watching live calls: ``POST /whep/call/{call_id}`` and the list of live calls.

A supervisor token (``telepresence token NAME --role supervisor``) opens a WHEP session on a
live call: what the customer sees (the room's one encode, forwarded: telepresence.call_taps)
and both voices. The offer's sections, in order: video (receive), audio (receive: the agent's
voice), audio (receive: the customer's voice). The whisper rides on the same session, not on a
WHIP session of its own: an audio section the offer SENDS on (the page's agent-voice section,
sendrecv) is the supervisor's microphone, heard by the agent only, while it sends (the page
sends only while "Whisper" is held). Every watcher may whisper: the one whose microphone is on
is heard, the others wait until it has been quiet for half a second. One peer, one ICE and DTLS
setup, one session to end; a standard WHEP client (receive-only) simply never whispers.

Customers' keys and tickets, agents' and viewers' tokens never open these (401/403, as every
door answers); an unknown or ended call is 404; the session ends with the call (the sweeper
finds it gone within a second), on ``DELETE``, or as every door's sessions end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from media.answer import MediaError, answer_with_codec_first
from media.peers import negotiated_codec
from telepresence.auth import TOKEN_ROLES, AuthError, TokenAuthority
from telepresence.call_taps import CallTap, CallTaps
from telepresence.calls import Call
from telepresence.door_sessions import RETRY_AFTER_S, DoorError, Opened, Session

logger = logging.getLogger(__name__)

WHEP_CALL = "/whep/call/{call_id}"
CALLS_API = "/api/supervisor/calls"


def call_id_of(session_path: str) -> str:
    """The call id in a session's door path (``/whep/call/ID``)."""
    return session_path.rsplit("/", 1)[-1]


class CallMonitorDoor:
    """``/whep/call/{call_id}``: a live call for a supervisor, with a whisper to its agent."""

    roles = ("supervisor",)
    publishes = False

    def __init__(self, taps: CallTaps, calls: Callable[[], list[Call]]) -> None:
        self.taps = taps
        self.calls = calls

    def token_required(self) -> bool:
        return True

    async def close(self) -> None:
        await self.taps.close()

    def live_call(self, call_id: str) -> Call:
        call = next((c for c in self.calls() if c.id == call_id), None)
        if call is None or not call.active:
            raise DoorError(404, f"no live call {call_id!r} (it ended, or never was)")
        return call

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        call = self.live_call(call_id_of(session.path))
        if call.room is None:
            raise DoorError(
                409, "the call's media has not started yet; try again", {"Retry-After": str(RETRY_AFTER_S)}
            )
        # What a peer sends and nobody reads would queue up: a watcher sends one voice at most.
        # Refused before the tap opens: the agent is not told of a supervisor who never watched.
        whispering = [t for t in audio if t.receiver.track is not None]
        if video[0].receiver.track is not None or len(whispering) > 1:
            raise DoorError(422, "a supervisor's offer receives video and sends one audio section at most")
        try:
            tap = await self.taps.join(call, session)
        except MediaError as exc:
            if exc.code in ("call_ended", "gone"):
                raise DoorError(404, exc.message) from None
            raise DoorError(
                503,
                f"the call's media cannot be watched now: {exc.message}",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        except Exception as exc:  # the server's own peer failed: not the client's offer
            logger.exception("%s: opening the supervisors' tap failed", call.id)
            raise DoorError(500, f"the server could not open the call's media: {exc}") from None
        try:
            self._wire(tap, session, video[0], audio, whispering)
        except BaseException:
            await self.taps.leave(tap, session)
            raise

        async def undo() -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.sender.track is not None:
                    transceiver.sender.track.stop()
            for transceiver in whispering:
                tap.whisper.remove_speaker(transceiver.receiver)
            await self.taps.leave(tap, session)

        def alive() -> bool:
            return call.active and not tap.closed and call.room is tap.room and tap.connected

        return Opened(alive=alive, undo=undo)

    @staticmethod
    def _wire(
        tap: CallTap,
        session: Session,
        picture: RTCRtpTransceiver,
        audio: list[RTCRtpTransceiver],
        whispering: list[RTCRtpTransceiver],
    ) -> None:
        assert tap.video is not None
        answer_with_codec_first(picture, tap.codec)
        codec = negotiated_codec(picture)
        if codec != tap.codec:
            raise DoorError(
                422, f"offer {tap.codec} video: the call's picture is {tap.codec} (offered: {codec})"
            )
        picture.sender.replaceTrack(tap.video.output(picture.sender))
        voices = (tap.agent_voice, tap.customer_voice)
        for transceiver, voice in zip(audio, voices, strict=False):
            transceiver.sender.replaceTrack(voice.output())
        for transceiver in (picture, *audio[:2]):
            transceiver.direction = "sendrecv"  # the answer narrows it to what the offer allows
        if whispering:
            tap.whisper.add_speaker(whispering[0].receiver)
            logger.info("%s: %s may whisper", tap.call.id, session.claims.name if session.claims else "?")


async def live_calls(request: Request) -> Response:
    """``GET /api/supervisor/calls`` (supervisor token): every live call, and who watches it.
    ``OPTIONS``: the CORS preflight, as the doors answer it."""
    cors = {"Access-Control-Allow-Origin": "*"}
    if request.method == "OPTIONS":
        preflight = {
            "Allow": "GET, OPTIONS",
            "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization",
            "Access-Control-Max-Age": "86400",
        }
        return Response(status_code=204, headers={**cors, **preflight})
    doors = getattr(request.app.state, "doors", None)
    door = doors.doors.get(WHEP_CALL) if doors is not None else None
    if door is None:
        return PlainTextResponse(
            "supervisors watch calls on a single-process centre (no --redis) in this version\n", 501, cors
        )
    authority: TokenAuthority = request.app.state.authority
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer", **cors}
    if scheme.lower() != "bearer" or not token.strip():
        return PlainTextResponse("send a supervisor token as 'Authorization: Bearer TOKEN'\n", 401, challenge)
    try:
        claims = authority.verify(token.strip(), time.time(), roles=(*TOKEN_ROLES, "customer"))
    except AuthError as exc:
        return PlainTextResponse(
            f"{exc}\n", 401, {**challenge, "WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if claims.role != "supervisor":
        return PlainTextResponse(f"a {claims.role} token cannot list calls (a supervisor's can)\n", 403, cors)
    now = time.monotonic()  # the switchboard's clock, which calls start by
    calls = [
        {
            "call_id": call.id,
            "agent": call.agent_id,
            "customer": call.customer_id,
            "seconds": round(max(0.0, now - call.started_at)),
            "media": call.room is not None,
            "watching": door.taps.watching(call.id),
        }
        for call in door.calls()
        if call.active
    ]
    return JSONResponse({"calls": calls}, headers={**cors, "Cache-Control": "no-store"})
