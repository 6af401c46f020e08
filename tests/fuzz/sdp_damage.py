"""A real SDP offer for the fuzzer, and the ways it breaks one (sections, lines, codecs, bytes)."""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

SDP_DAMAGES = [
    "none",
    "drop_m:audio",
    "drop_m:video",
    "drop_m:video_first",
    "drop_m:all",
    "drop_line:a=fingerprint",
    "drop_line:a=ice-ufrag",
    "drop_line:a=ice-pwd",
    "drop_line:a=rtpmap",
    "drop_line:a=group",
    "drop_line:a=setup",
    "drop_line:a=candidate",
    "drop_line:a=mid",
    "drop_line:c=",
    "drop_line:o=",
    "drop_line:v=",
    "drop_line:m=",
    "video_codecs_unknown",
    "swap_sections",
    "truncate",
    "insert",
    "lf_only",
    "header_only",
]


async def canned_offer() -> str:
    """A real, browser-like SDP offer (audio, camera, screen), made by aiortc without network."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.addTransceiver("audio", "sendrecv")
    pc.addTransceiver("video", "sendrecv")
    pc.addTransceiver("video", "sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def damage_sdp(sdp: str, how: str, at: int = 0, char: str = "") -> str:
    """A valid offer with sections or lines removed, reordered, truncated or spoiled."""
    lines = sdp.replace("\r\n", "\n").strip("\n").split("\n")
    header: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            header.append(line)

    def join(head: list[str], parts: list[list[str]]) -> str:
        return "\r\n".join(head + [line for part in parts for line in part]) + "\r\n"

    if how == "none":
        return sdp
    if how.startswith("drop_m:"):
        what = how.split(":")[1]
        if what == "audio":
            kept = [s for s in sections if not s[0].startswith("m=audio")]
        elif what == "video":
            kept = [s for s in sections if not s[0].startswith("m=video")]
        elif what == "video_first":
            videos = [i for i, s in enumerate(sections) if s[0].startswith("m=video")]
            kept = [s for i, s in enumerate(sections) if not videos or i != videos[0]]
        else:
            kept = []
        return join(header, kept)
    if how.startswith("drop_line:"):
        prefix = how.split(":", 1)[1]
        return join(
            [h for h in header if not h.startswith(prefix)],
            [[ln for ln in part if not ln.startswith(prefix)] for part in sections],
        )
    if how == "video_codecs_unknown":
        return sdp.replace("VP8/90000", "XYZ/90000").replace("H264/90000", "ABC/90000")
    if how == "swap_sections":
        return join(header, sections[::-1])
    if how == "truncate":
        return sdp[: max(1, at % len(sdp))]
    if how == "insert":
        i = at % len(sdp)
        return sdp[:i] + (char or "é") + sdp[i:]
    if how == "lf_only":
        return sdp.replace("\r\n", "\n")
    if how == "header_only":
        return join(header, [])
    return sdp
