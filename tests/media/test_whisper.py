"""The whisper mix (media.whisper): the agent's share of the customer's voice carries the
supervisor's whisper while it comes, on the customer's packets' timeline; every other share,
and the agent's once the whisper stops, is the customer's packets untouched."""

from __future__ import annotations

import fractions
import math

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

from media.voice import OPUS_FRAME, OPUS_RATE, OPUS_TIME_BASE
from media.whisper import WhisperedVoice
from tests.media.voice_loopback import until_received, voice_to_a_peer


def tone_packets(frequency: float, count: int, start_pts: int = 0) -> list[av.Packet]:
    """``count`` 20 ms Opus packets of a tone, as a speaker's relay hands them on."""
    encoder, packets = OpusEncoder(), []
    for i in range(count):
        t = (np.arange(OPUS_FRAME) + i * OPUS_FRAME) / OPUS_RATE
        pcm = (8000 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = (
            OPUS_RATE,
            i * OPUS_FRAME,
            fractions.Fraction(1, OPUS_RATE),
        )
        payloads, _ = encoder.encode(frame)
        packet = av.Packet(payloads[0])
        packet.pts, packet.time_base = start_pts + i * OPUS_FRAME, OPUS_TIME_BASE
        packets.append(packet)
    return packets


def tones(decoder: OpusDecoder, packet: av.Packet) -> set[int]:
    """The tones (to 50 Hz) one packet holds."""
    frames = decoder.decode(JitterFrame(data=bytes(packet), timestamp=int(packet.pts)))
    mono = np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for f in frames]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    hz = np.fft.rfftfreq(mono.size, 1 / OPUS_RATE)
    return {int(round(hz[i] / 50) * 50) for i in np.flatnonzero(spectrum > 0.3 * spectrum.max())}


async def test_the_agent_hears_the_whisper_mixed_in_and_nobody_else_does():
    voice = WhisperedVoice("test")
    agent, supervisor = voice.output(), voice.plain_output()
    customer_packets = tone_packets(500, 30, start_pts=96_000)
    whisper_packets = tone_packets(1000, 20)
    agent_ear, supervisor_ear = OpusDecoder(), OpusDecoder()
    heard_by_agent: list[set[int]] = []
    for i, packet in enumerate(customer_packets):
        if i < len(whisper_packets):
            voice.whisper._deliver(whisper_packets[i])  # as the monitor's receiver hands it on
        voice._deliver(packet)
        to_agent, to_supervisor = await agent.recv(), await supervisor.recv()
        assert to_agent.pts == packet.pts  # the agent's timeline is the customer's
        assert bytes(to_supervisor) == bytes(packet)  # never the whisper
        heard_by_agent.append(tones(agent_ear, to_agent))
        assert 1000 not in tones(supervisor_ear, to_supervisor)
        if i >= len(whisper_packets):
            assert bytes(to_agent) == bytes(
                packet
            )  # the whisper stopped: the customer's packets as they came
    mixed = heard_by_agent[5:20]  # past the codecs' start
    assert all({500, 1000} <= heard for heard in mixed), mixed
    assert voice.mixed == 20
    agent.stop()
    supervisor.stop()
    voice.close()


async def test_sent_from_the_callback_the_agent_still_hears_the_whisper_mixed_in():
    # The room sends the agent's share on its sender as each customer packet arrives (no queue,
    # no track): the whisper must be mixed in on that path too.
    voice = WhisperedVoice("direct")
    async with voice_to_a_peer(voice.output) as payloads:
        customer_packets, whisper_packets = tone_packets(500, 30, start_pts=96_000), tone_packets(1000, 20)
        for i, packet in enumerate(customer_packets):
            if i < len(whisper_packets):
                voice.whisper._deliver(whisper_packets[i])
            voice._deliver(packet)  # as the customer's receiver hands it on, in its callback
        await until_received(payloads, len(customer_packets))
    voice.close()
    ear, heard = OpusDecoder(), []
    for data in payloads:
        packet = av.Packet(data)
        packet.pts = 0
        heard.append(tones(ear, packet))
    assert all({500, 1000} <= h for h in heard[5:20]), heard  # past the codecs' start
    assert payloads[20:] == [bytes(p) for p in customer_packets[20:]]  # the whisper stopped
    assert voice.mixed == 20
