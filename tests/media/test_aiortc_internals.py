"""aiortc's private names this project relies on (media/aiortc_internals/) are all still there.

When an aiortc upgrade moves one, this is the test that fails, naming it.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

from media import aiortc_internals as internals
from media.aiortc_internals import _transports


async def _instances() -> dict[str, object]:
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("audio")
        offerer.addTransceiver("video")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(
            RTCSessionDescription(sdp=offerer.localDescription.sdp, type="offer")
        )
        transceiver = answerer.getTransceivers()[1]
        return {
            "RTCRtpReceiver": transceiver.receiver,
            "RTCRtpSender": transceiver.sender,
            "RTCRtpTransceiver": transceiver,
            "RTCDtlsTransport": transceiver.receiver.transport,
            "RTCIceTransport": transceiver.receiver.transport.transport,
            "RTCIceGatherer": transceiver.receiver.transport.transport.iceGatherer,
            "Connection": transceiver.receiver.transport.transport.iceGatherer._connection,
            "JitterBuffer": JitterBuffer(capacity=16, is_video=True),
            "Vp8Encoder": Vp8Encoder(),
            "H264Encoder": H264Encoder(),
        }
    finally:
        await offerer.close()
        await answerer.close()


@pytest.mark.parametrize(("owner", "name"), internals.PRIVATE_ATTRIBUTES)
async def test_a_private_attribute_we_use_still_exists(owner, name):
    instance = (await _instances())[owner]
    assert hasattr(instance, name), f"aiortc's {owner} no longer has {name}: update media/aiortc_internals/"


@pytest.mark.parametrize(
    ("owner", "name"), internals.PRIVATE_METHODS, ids=lambda v: getattr(v, "__name__", v)
)
def test_a_private_method_we_wrap_still_exists(owner, name):
    assert callable(getattr(owner, name, None)), f"aiortc's {owner.__name__}.{name} is gone"


def test_the_timestamp_mapper_still_keeps_its_origin():
    from aiortc.rtcrtpreceiver import TimestampMapper

    mapper = TimestampMapper()
    mapper.map(1234)
    assert mapper._origin == 1234


def with_transport_cc(sdp: str) -> str:
    """An aiortc offer as Chromium would make it: transport-cc extension and feedback on video."""
    lines = []
    for line in sdp.split("\r\n"):
        lines.append(line)
        if line.startswith("a=rtpmap:") and "VP8/90000" in line:
            lines.append(f"a=rtcp-fb:{line.split()[0].split(':')[1]} transport-cc")
        if line.startswith("a=mid:"):
            lines.append(f"a=extmap:5 {internals.TRANSPORT_CC_URI}")
    return "\r\n".join(lines)


async def test_the_answer_has_transport_cc_only_where_the_offer_has_it():
    for offered, expected in ((with_transport_cc, True), (lambda sdp: sdp, False)):
        offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
        try:
            offerer.addTransceiver("video")
            await offerer.setLocalDescription(await offerer.createOffer())
            sdp = offered(offerer.localDescription.sdp)
            await answerer.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            media = aiortc_sdp.SessionDescription.parse(sdp).media[0]
            internals.answer_transport_cc(answerer.getTransceivers()[0], media)
            await answerer.setLocalDescription(await answerer.createAnswer())
            answer = answerer.localDescription.sdp
            assert ("transport-cc" in answer) is expected
            assert (internals.TRANSPORT_CC_URI in answer) is expected
            assert internals.negotiated_transport_cc(answerer.getTransceivers()[0]) is expected
            # aiortc's own offers are untouched.
            assert "transport-cc" not in offerer.localDescription.sdp
        finally:
            await offerer.close()
            await answerer.close()


def test_abs_capture_time_is_packed_beside_aiortcs_own_extensions():
    from aiortc.rtcrtpparameters import RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=13, uri=internals.ABS_CAPTURE_TIME_URI),
        ]
    )
    ours = _transports._ExtensionsMap()
    ours.configure(parameters)
    stock = HeaderExtensionsMap()
    stock.configure(parameters)
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x" * 10)
    packet.extensions.mid = "1"
    internals.set_abs_capture_time(packet, 0x0123456789ABCDEF)
    data = packet.serialize(ours)
    profile, block = 0xBEDE, data[16 : 16 + 4 * int.from_bytes(data[14:16], "big")]
    assert _transports._unpack_extensions(profile, block) == [
        (4, b"1"),
        (13, bytes.fromhex("0123456789ABCDEF")),
    ]
    assert RtpPacket.parse(data, stock).extensions.mid == "1"  # the rest still reads as before
    assert RtpPacket.parse(data, stock).payload == b"x" * 10


def test_the_retransmission_history_sizes_are_still_module_globals_read_at_each_use():
    import inspect

    import aiortc.rtcrtpreceiver
    import aiortc.rtcrtpsender

    for module in (aiortc.rtcrtpsender, aiortc.rtcrtpreceiver):
        assert isinstance(module.RTP_HISTORY_SIZE, int), f"{module.__name__} has no RTP_HISTORY_SIZE"
        assert "% RTP_HISTORY_SIZE" in inspect.getsource(module) or "-RTP_HISTORY_SIZE" in inspect.getsource(
            module
        ), f"{module.__name__} no longer reads RTP_HISTORY_SIZE where media.peers sets it"
