"""The server's standard media doors (WHIP in, WHEP out), each wired to what it drives."""

from __future__ import annotations

from telepresence.agent_cameras import AgentCameras
from telepresence.agent_door import AgentCameraDoor
from telepresence.auth import TokenAuthority
from telepresence.call_taps import CallTaps
from telepresence.config import Settings
from telepresence.host_doors import HostViewerDoor, StudioDoor
from telepresence.media_doors import MediaDoors
from telepresence.supervisor_doors import WHEP_CALL, CallMonitorDoor
from telepresence.switchboard import Switchboard

WHEP_HOST = "/whep/host"
WHIP_STUDIO = "/whip/studio"
WHIP_AGENT = "/whip/agent"
DOOR_PATHS = [WHEP_HOST, WHIP_STUDIO, WHIP_AGENT, WHEP_CALL]


def open_doors(switchboard: Switchboard, settings: Settings, authority: TokenAuthority) -> MediaDoors:
    """The doors of a single-process centre (its switchboard's media and live host)."""
    media = switchboard.media
    desk = media.hosts
    directory = switchboard.directory

    def send_agent(name: str, message: dict) -> None:
        session = directory.agents.get(name)
        if session is not None and session.dropped_until is None:
            session.conn.send(message)

    media.agent_cameras = AgentCameras(send_agent=send_agent, calls=directory.active_calls)
    media.call_taps = CallTaps(send_agent)
    doors = {
        WHEP_HOST: HostViewerDoor(
            desk, codec=settings.video_codec, token_required=settings.whep_viewer_token_required
        ),
        WHIP_STUDIO: StudioDoor(desk),
        WHIP_AGENT: AgentCameraDoor(media.agent_cameras),
        WHEP_CALL: CallMonitorDoor(media.call_taps, directory.active_calls),
    }
    return MediaDoors(
        settings,
        authority,
        doors,
        server_ice_servers=media.server_ice_servers,
        gathering=media.gathering,
    )
