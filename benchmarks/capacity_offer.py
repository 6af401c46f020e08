"""The capacity clients' offers, made to ask what a browser's ask: transport-cc.

A browser offers transport-wide congestion control in every audio and video section (the
header extension and ``a=rtcp-fb:<pt> transport-cc`` on each codec) and numbers every packet it
sends; the server then answers it, stops aiortc's REMB estimator on those receivers and sends
transport-cc feedback instead (media.congestion). aiortc offers neither, so an aiortc client
would have the server do work no browser gives it: the clients offer it and number their
packets (media.aiortc_internals.TransportSequence), so the server's per-call cost is a browser
call's.
"""

from __future__ import annotations

import re

from media import aiortc_internals as internals

TRANSPORT_CC_ID = 13  # aiortc's own offers use ids 1-3; abs-capture-time is 14 here


def offer_transport_cc(sdp: str) -> str:
    """The offer with transport-cc offered in every audio and video section, as a browser does."""
    extmap = f"a=extmap:{TRANSPORT_CC_ID} {internals.TRANSPORT_CC_URI}\r\n"
    out = []
    for part in re.split(r"(?=^m=)", sdp, flags=re.M):
        if part.startswith(("m=audio", "m=video")) and internals.TRANSPORT_CC_URI not in part:
            extmaps = list(re.finditer(r"^a=extmap:.*\r\n", part, flags=re.M))
            at = extmaps[-1].end() if extmaps else part.index("\r\n") + 2
            part = part[:at] + extmap + part[at:]
            codecs = [
                m for m in re.finditer(r"^a=rtpmap:(\d+) ([^/\r\n]+).*\r\n", part, flags=re.M)
                if m.group(2).lower() != "rtx"
            ]
            for rtpmap in reversed(codecs):  # from the end: earlier offsets stay right
                feedback = f"a=rtcp-fb:{rtpmap.group(1)} transport-cc\r\n"
                part = part[: rtpmap.end()] + feedback + part[rtpmap.end() :]
        out.append(part)
    return "".join(out)
