"""aiortc's private names this project relies on (media/aiortc_internals.py) are all still there.

When an aiortc upgrade moves one, this is the test that fails, naming it.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer

from media import aiortc_internals as internals


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
            "JitterBuffer": JitterBuffer(capacity=16, is_video=True),
        }
    finally:
        await offerer.close()
        await answerer.close()


@pytest.mark.parametrize(("owner", "name"), internals.PRIVATE_ATTRIBUTES)
async def test_a_private_attribute_we_use_still_exists(owner, name):
    instance = (await _instances())[owner]
    assert hasattr(instance, name), f"aiortc's {owner} no longer has {name}: update media/aiortc_internals.py"


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


async def test_offering_transport_cc_makes_aiortc_negotiate_it():
    internals.offer_transport_cc()
    internals.offer_transport_cc()  # idempotent
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("video")
        await offerer.setLocalDescription(await offerer.createOffer())
        assert offerer.localDescription.sdp.count(internals.TRANSPORT_CC_URI) == 1
        await answerer.setRemoteDescription(
            RTCSessionDescription(sdp=offerer.localDescription.sdp, type="offer")
        )
        await answerer.setLocalDescription(await answerer.createAnswer())
        assert "a=rtcp-fb:97 transport-cc" in answerer.localDescription.sdp
        assert internals.negotiated_transport_cc(answerer.getTransceivers()[0])
    finally:
        await offerer.close()
        await answerer.close()
