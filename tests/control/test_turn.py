"""TURN credentials (telepresence/turn.py): coturn's scheme, the settings, what browsers are sent,
and a real coturn (tests/turn_server.py) that accepts them and refuses forged or expired ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib.util
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice import Connection, TransportPolicy
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from media.answer import close_peer, receive_offer
from telepresence import turn
from telepresence.calls import Call
from telepresence.centre.ids import DerivedIds
from telepresence.config import Settings
from telepresence.media_control import MediaControl
from telepresence.media_worker import _ice_server
from telepresence.metrics import Metrics
from telepresence.room_handle import LocalRoom
from telepresence.turn import IceConfig
from tests.control.fakes import Centre
from tests.turn_server import TURNSERVER, TurnServer

SECRET = "coturn-static-auth-secret-42"
URLS = (
    "turn:turn.example.com:3478?transport=udp,turn:turn.example.com:3478?transport=tcp,"
    "turns:turn.example.com:5349"
)
TURN_SETTINGS: dict[str, Any] = {"turn_urls": URLS, "turn_secret": SECRET}


def load(**values: Any) -> Settings:
    return Settings.load(env={}, **values)


# ------------------------------------------------------------------ minting


def test_password_is_coturns_hmac_sha1_of_the_username() -> None:
    # By hand: RFC 2104 HMAC with SHA-1 (64-byte blocks), then base64, as coturn computes it.
    user = "1800086400:turn-0123"
    key = SECRET.encode().ljust(64, b"\0")
    inner = hashlib.sha1(bytes(k ^ 0x36 for k in key) + user.encode()).digest()
    outer = hashlib.sha1(bytes(k ^ 0x5C for k in key) + inner).digest()
    assert turn.password(SECRET, user) == base64.b64encode(outer).decode()
    assert (
        turn.password(SECRET, user)
        == base64.b64encode(hmac.new(SECRET.encode(), user.encode(), "sha1").digest()).decode()
    )
    assert turn.password(SECRET.encode(), user) == turn.password(SECRET, user)


def test_username_is_expiry_colon_id_and_expiry_is_now_plus_ttl() -> None:
    ice = IceConfig.from_settings(load(**TURN_SETTINGS, turn_ttl_s=3600))
    creds = ice.credentials("turn-abc", 1_800_000_000.7)
    assert creds is not None
    assert creds["username"] == "1800003600:turn-abc"
    assert creds["credential"] == turn.password(SECRET, "1800003600:turn-abc")
    assert creds["urls"] == URLS.split(",")
    default = IceConfig.from_settings(load(**TURN_SETTINGS)).credentials("x", 1000.0)
    assert default is not None and default["username"] == f"{1000 + 86400}:x"  # a day by default
    with pytest.raises(ValueError, match="':'"):
        turn.username(1.0, "a:b")  # coturn splits the username at its first ':'


def test_credentials_are_distinct_per_connection() -> None:
    ice = IceConfig.from_settings(load(**TURN_SETTINGS))
    a, b = ice.credentials("turn-a", 1000.0), ice.credentials("turn-b", 1000.0)
    assert a is not None and b is not None
    assert a["username"] != b["username"] and a["credential"] != b["credential"]


def test_ice_servers_put_turn_first_then_stun_and_browsers_get_no_bare_turn() -> None:
    ice = IceConfig.from_settings(
        load(**TURN_SETTINGS, ice_servers="stun:stun.example.com:3478,turn:old.example.com")
    )
    browser = ice.ice_servers("turn-a", 0.0)
    assert [s["urls"] for s in browser] == [URLS.split(","), ["stun:stun.example.com:3478"]]
    assert set(browser[0]) == {"urls", "username", "credential"}
    server = ice.ice_servers("server-call-1", 0.0, browser=False)
    assert server[1] == {"urls": ["stun:stun.example.com:3478", "turn:old.example.com"]}
    # Nothing configured: an empty list, and "all".
    none = IceConfig.from_settings(load())
    assert none.browser_fields("", 0.0) == {"ice_servers": [], "ice_transport_policy": "all"}
    # The worker turns each dict back into aiortc's RTCIceServer.
    rebuilt = _ice_server(server[0])
    assert rebuilt.username == server[0]["username"] and rebuilt.credential == server[0]["credential"]
    assert _ice_server("stun:stun.example.com").urls == "stun:stun.example.com"


# ----------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"turn_urls": URLS}, "turn_urls needs turn_secret"),
        ({"turn_urls": "http://turn.example.com", "turn_secret": "s"}, "is not a STUN/TURN URL"),
        ({"turn_urls": "turnx:turn.example.com", "turn_secret": "s"}, "scheme must be turn, turns"),
        ({"turn_urls": "turn::3478", "turn_secret": "s"}, "no host name"),
        ({"turn_urls": "turn:[::1]:3478", "turn_secret": "s"}, "no host name"),
        ({"turn_urls": "turn:t.example.com:0", "turn_secret": "s"}, "not a number in 1..65535"),
        ({"turn_urls": "turn:t.example.com:x", "turn_secret": "s"}, "not a number in 1..65535"),
        ({"turn_urls": "turn:t.example.com?transport=sctp", "turn_secret": "s"}, "must be udp or tcp"),
        ({"turn_urls": "turns:t.example.com?transport=udp", "turn_secret": "s"}, "tcp only"),
        ({"ice_servers": "stun:s.example.com?transport=udp"}, "setting ice_servers"),
        ({"ice_transport_policy": "none"}, "is not all or relay"),
        ({"ice_transport_policy": "relay"}, "relay needs turn_urls"),
        ({"turn_ttl_s": 0}, "turn_ttl_s"),
        ({"turn_ttl_s": "nan"}, "turn_ttl_s"),
    ],
)
def test_bad_settings_are_refused_at_load_naming_the_setting(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        load(**values)
    assert "setting " in str(refused.value)
    assert "secret=" not in str(refused.value) and SECRET not in str(refused.value)


def test_settings_from_env_and_the_secret_kept_out_of_repr() -> None:
    settings = Settings.load(
        env={
            "TELEPRESENCE_TURN_URLS": "turn:127.0.0.1:3478",
            "TELEPRESENCE_TURN_SECRET": SECRET,
            "TELEPRESENCE_TURN_TTL_S": "600",
            "TELEPRESENCE_ICE_TRANSPORT_POLICY": "Relay",
        }
    )
    assert settings.turn_secret == SECRET and settings.turn_ttl_s == 600.0
    assert settings.ice_transport_policy == "relay"
    assert SECRET not in repr(settings) and SECRET not in repr(IceConfig.from_settings(settings))
    assert Settings.load(env={"TELEPRESENCE_TURN_SECRET": ""}).turn_secret is None


# ------------------------------------------------------- welcome, logged_in


@pytest.fixture
async def make_centre() -> AsyncIterator[Callable[..., Centre]]:
    made: list[Centre] = []

    def make(**overrides: Any) -> Centre:
        made.append(Centre(**overrides))
        return made[-1]

    yield make
    for centre in made:
        await centre.stop()


def check_credentials(message: dict[str, Any], now: float, ttl: float = 86400.0) -> str:
    """The message's TURN entry is valid coturn credentials expiring at now + ttl; its username."""
    (entry,) = [s for s in message["ice_servers"] if "username" in s]
    expiry, _, id = entry["username"].partition(":")
    assert int(expiry) == int(now + ttl) and id
    assert entry["credential"] == turn.password(SECRET, entry["username"])
    assert entry["urls"] == URLS.split(",")
    return str(entry["username"])


async def test_welcome_and_logged_in_carry_ice_servers_distinct_per_socket(
    make_centre: Callable[..., Centre], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    centre = make_centre(**TURN_SETTINGS, ice_servers="stun:stun.example.com", ice_transport_policy="relay")
    now = centre.clock.wall()
    ada = await centre.join("ada")
    welcome = ada.last("welcome")
    assert welcome["ice_transport_policy"] == "relay"
    assert welcome["ice_servers"][1] == {"urls": ["stun:stun.example.com"]}
    names = {check_credentials(welcome, now)}
    names.add(check_credentials((await centre.join("bob")).last("welcome"), now))
    await centre.advance(30)
    sam = await centre.login("sam")
    names.add(check_credentials(sam.last("logged_in"), now + 30))
    assert sam.last("logged_in")["ice_transport_policy"] == "relay"
    # A rejoin (a reload) is a new socket: new credentials.
    await centre.close(ada)
    again = await centre.rejoin(welcome["ticket"])
    rewelcome = again.last("welcome")
    assert rewelcome["rejoined"] is True
    names.add(check_credentials(rewelcome, now + 30))
    assert len(names) == 4
    # The secret is in no message and no log line.
    for conn in (ada, again, sam):
        assert SECRET not in json.dumps(conn.received)
    assert caplog.records and not [r for r in caplog.records if SECRET in r.getMessage()]


async def test_without_turn_the_fields_are_empty(make_centre: Callable[..., Centre]) -> None:
    centre = make_centre()
    welcome = (await centre.join("ada")).last("welcome")
    assert welcome["ice_servers"] == [] and welcome["ice_transport_policy"] == "all"
    logged_in = (await centre.login("sam")).last("logged_in")
    assert logged_in["ice_servers"] == [] and logged_in["ice_transport_policy"] == "all"


async def test_credentials_are_the_same_when_a_step_is_replayed(make_centre: Callable[..., Centre]) -> None:
    """A centre's new leader replays a step with the same state, ids and clock: same credentials."""
    welcomes = []
    for _ in range(2):
        centre = make_centre(**TURN_SETTINGS)
        ids = DerivedIds(b"centre secret")
        ids.salt = "0123456789abcdef"
        centre.switchboard.ids = centre.switchboard.reception.ids = ids
        welcomes.append((await centre.join("ada")).last("welcome")["ice_servers"])
    assert welcomes[0] == welcomes[1]


# ---------------------------------------------------------------- a real coturn

needs_coturn = pytest.mark.skipif(TURNSERVER is None, reason="no turnserver (apt-get install coturn)")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[TurnServer]:
    with TurnServer(tmp_path / "coturn", secret=SECRET) as server:
        yield server


class _Sink(asyncio.DatagramProtocol):
    pass


async def allocate(server: TurnServer, user: str, password: str, transport: str) -> tuple[str, int]:
    """A TURN allocation on ``server``; its relayed address. Raises TransactionFailed if refused."""
    endpoint, _ = await asyncio.wait_for(
        create_turn_endpoint(_Sink, ("127.0.0.1", server.port), user, password, transport=transport), 10
    )
    try:
        return endpoint.get_extra_info("sockname")  # type: ignore[no-any-return]
    finally:
        endpoint.close()


@needs_coturn
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_allocates_with_minted_credentials_and_refuses_forged_or_expired(
    coturn: TurnServer, transport: str
) -> None:
    ice = IceConfig.from_settings(load(turn_urls=coturn.url(transport), turn_secret=SECRET, turn_ttl_s=60))
    good = ice.credentials("turn-good", time.time())
    assert good is not None
    host, port = await allocate(coturn, good["username"], good["credential"], transport)
    assert host == "127.0.0.1" and coturn.relay_ports[0] <= port <= coturn.relay_ports[1]

    forged = turn.password("not-the-secret", good["username"])
    with pytest.raises(TransactionFailed, match="401"):
        await allocate(coturn, good["username"], forged, transport)
    # A username whose expiry has passed is refused, its password right for the secret.
    expired = IceConfig.from_settings(load(turn_urls=coturn.url(transport), turn_secret=SECRET, turn_ttl_s=1))
    old = expired.credentials("turn-old", time.time() - 5)
    assert old is not None
    with pytest.raises(TransactionFailed, match="401"):
        await allocate(coturn, old["username"], old["credential"], transport)


@needs_coturn
async def test_relay_policy_gathers_only_a_relay_candidate_through_coturn(coturn: TurnServer) -> None:
    ice = IceConfig.from_settings(
        load(turn_urls=coturn.url("udp"), turn_secret=SECRET, ice_transport_policy="relay")
    )
    creds = ice.credentials("server-call-1", time.time())
    assert creds is not None
    connection = Connection(
        ice_controlling=True,
        components=1,
        turn_server=("127.0.0.1", coturn.port),
        turn_username=creds["username"],
        turn_password=creds["credential"],
        transport_policy=TransportPolicy.RELAY,
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 10)
        assert [c.type for c in connection.local_candidates] == ["relay"]
    finally:
        await connection.close()

    forged = Connection(
        ice_controlling=True,
        components=1,
        turn_server=("127.0.0.1", coturn.port),
        turn_username=creds["username"],
        turn_password="Zm9yZ2Vk",
        transport_policy=TransportPolicy.RELAY,
    )
    try:
        with contextlib.suppress(TransactionFailed):  # aioice logs a refused allocation
            await asyncio.wait_for(forged.gather_candidates(), 10)
        assert forged.local_candidates == []  # relay only, and no relay: nothing to offer
    finally:
        await forged.close()


@needs_coturn
async def test_the_servers_answering_peer_connects_relayed_only_through_coturn(coturn: TurnServer) -> None:
    """media.answer with the room's minted TURN credentials and policy "relay", as MediaControl
    builds them, against an aiortc offerer that is relay-only too: every path goes through coturn."""
    ice = IceConfig.from_settings(
        load(turn_urls=coturn.url("udp"), turn_secret=SECRET, ice_transport_policy="relay")
    )
    browser = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer(**s) for s in ice.ice_servers("turn-browser", time.time())],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )
    browser.addTransceiver("audio", direction="sendrecv")
    browser.addTransceiver("video", direction="recvonly")
    await browser.setLocalDescription(await browser.createOffer())
    assert "typ relay" in browser.localDescription.sdp and "typ host" not in browser.localDescription.sdp
    server_ice = [RTCIceServer(**s) for s in ice.ice_servers("server-call-1", time.time(), browser=False)]
    server, _, _ = await receive_offer(browser.localDescription.sdp, server_ice, ice.policy)
    try:
        connected = asyncio.get_running_loop().create_future()

        @server.on("connectionstatechange")
        def _changed() -> None:
            if server.connectionState in ("connected", "failed") and not connected.done():
                connected.set_result(server.connectionState)

        await server.setLocalDescription(await server.createAnswer())
        answer = server.localDescription.sdp
        assert "typ relay" in answer and "typ host" not in answer and "typ srflx" not in answer
        await browser.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert await asyncio.wait_for(connected, 15) == "connected"
        gatherer = server.getTransceivers()[0].receiver.transport.transport.iceGatherer
        assert {c.type for c in gatherer.getLocalCandidates()} == {"relay"}
    finally:
        await close_peer(server)
        await browser.close()


@pytest.mark.parametrize("end_in_each", [False, True], ids=["chromium", "firefox"])
async def test_a_bundled_offers_candidates_reach_the_answering_peer(end_in_each: bool) -> None:
    """Browsers list candidates in the first bundled section only (Firefox ends each section with
    end-of-candidates); aiortc alone would keep the last section's: none."""
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    browser.addTransceiver("audio", direction="sendrecv")
    browser.addTransceiver("video", direction="recvonly")
    browser.addTransceiver("video", direction="recvonly")
    await browser.setLocalDescription(await browser.createOffer())
    head, *sections = browser.localDescription.sdp.split("\r\nm=")
    candidates = [line for line in sections[0].split("\r\n") if line.startswith("a=candidate:")]
    assert candidates
    for i in range(1, len(sections)):
        lines = [line for line in sections[i].split("\r\n") if not line.startswith("a=candidate:")]
        sections[i] = "\r\n".join(line for line in lines if end_in_each or line != "a=end-of-candidates")
    offer = "\r\nm=".join([head, *sections])
    server, _, _ = await receive_offer(offer)
    try:
        transport = server.getTransceivers()[0].receiver.transport.transport
        assert len(transport.getRemoteCandidates()) == len(candidates)
    finally:
        await close_peer(server)
        await browser.close()


async def test_the_servers_rooms_get_credentials_of_their_own_and_the_policy() -> None:
    settings = load(
        **TURN_SETTINGS, ice_servers="stun:stun.example.com", ice_transport_policy="relay", media_workers=0
    )

    async def nothing(*_: object) -> None:
        return None

    media = MediaControl(
        settings,
        Metrics(),
        send=lambda *_: None,
        end_call=nothing,
        requeue_call=nothing,
        wall_clock=lambda: 1_800_000_000.0,
    )
    call = Call(id="call-1", customer_id="cust-1", agent_id="sam", started_at=0.0)
    try:
        room = media._room(call)
        assert isinstance(room, LocalRoom) and room.ice_transport_policy == "relay"
        first, stun = room.ice_servers
        assert first.username == f"{1_800_000_000 + 86400}:server-call-1"
        assert first.credential == turn.password(SECRET, first.username)
        assert first.urls == URLS.split(",") and stun.urls == ["stun:stun.example.com"]
    finally:
        media.close(call)
        await media.stop()


async def test_the_live_hosts_peers_get_credentials_of_their_own_and_the_policy() -> None:
    settings = load(**TURN_SETTINGS, ice_transport_policy="relay", media_workers=0)

    async def nothing(*_: object) -> None:
        return None

    media = MediaControl(
        settings,
        Metrics(),
        send=lambda *_: None,
        end_call=nothing,
        requeue_call=nothing,
        wall_clock=lambda: 1_800_000_000.0,
    )
    host = await media.hosts.start("olga", "aurora")
    try:
        (server,) = host._ice_servers
        assert server.username == f"{1_800_000_000 + 86400}:server-{host.id}"
        assert server.credential == turn.password(SECRET, server.username)
        assert host._ice_transport_policy == "relay"
    finally:
        await media.hosts.stop()
        await media.stop()


needs_chromium = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's Chromium (apt-get install -y chromium) and playwright",
)

# Every RTCPeerConnection a page makes, with the configuration it was given.
RECORD_PEERS = """
  const Native = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super(config); window.__peers.push({ pc: this, config }); }
  };
"""
# The newest peer's configuration and the candidate types of its selected pair.
RELAYED = """async () => {
  const { pc, config } = window.__peers[window.__peers.length - 1];
  // The pair the transport selected (the standard's answer); a nominated pair can lag behind it.
  let stats = [], pair;
  for (let tries = 0; tries < 50 && !pair; tries++) {
    if (tries) await new Promise((resolve) => setTimeout(resolve, 100));
    stats = [...(await pc.getStats()).values()];
    const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    pair = transport && stats.find((s) => s.id === transport.selectedCandidatePairId);
  }
  const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
  return { policy: config.iceTransportPolicy, servers: config.iceServers, state: pc.connectionState,
           local: pair && byId[pair.localCandidateId].candidateType,
           remote: pair && byId[pair.remoteCandidateId].candidateType };
}"""


@needs_coturn
@needs_chromium
@pytest.mark.browser
async def test_a_browser_call_relayed_only_through_coturn(tmp_path: Path, coturn: TurnServer) -> None:
    """Chromium customer and agent pages and the server's peers, all relay-only: media flows
    through coturn, with the credentials each socket was sent."""
    from benchmarks.chrome import agent_takes_the_call, chromium, customer_joins, new_page, playing
    from tests.conftest import run_server

    async with (
        run_server(
            tmp_path,
            video_size="360p",
            wrap_up_s=0,
            turn_urls=f"{coturn.url('udp')},{coturn.url('tcp')}",
            turn_secret=SECRET,
            ice_transport_policy="relay",
            media_workers=1,  # the room's peers in a media worker process, as served by default
        ) as server,
        chromium() as browser,
    ):
        customer = await new_page(browser, permissions=["camera", "microphone"])
        agent = await new_page(browser)
        for page in (customer, agent):
            await page.add_init_script(RECORD_PEERS)
        await customer_joins(customer, server.url)
        await agent_takes_the_call(agent, server)
        await playing(customer, "remote-video", frames=5)
        await playing(agent, "remote-video", frames=5)
        users = set()
        for page in (customer, agent):
            seen = await page.evaluate(RELAYED)
            assert seen["policy"] == "relay" and seen["state"] == "connected", seen
            assert seen["local"] == "relay" and seen["remote"] == "relay", seen
            (entry,) = seen["servers"]
            assert entry["credential"] == turn.password(SECRET, entry["username"])
            users.add(entry["username"])
        assert len(users) == 2
        log = coturn.log_tail(200_000)
        assert all(user in log for user in users)
        assert ":server-call-" in log  # the server's own peers allocated with credentials of their own
