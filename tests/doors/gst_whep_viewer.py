"""A WHEP viewer on GStreamer's webrtcbin, run by Debian's Python (python3-gi), not the project's:
ICE, DTLS, SRTP, RTP and decoding are GStreamer's; this script only carries the SDP over HTTP
(RFC 9725: POST the offer, DELETE the session on SIGINT or SIGTERM).

    /usr/bin/python3 gst_whep_viewer.py URL [--token TOKEN] [--codec H264|VP8]
    /usr/bin/python3 gst_whep_viewer.py --check     (exits 0 where GStreamer's typelibs load)

Prints one line per event, for the test to read: ``posted LOCATION``, ``frame N WIDTHxHEIGHT
R,G,B`` every 10th decoded picture (R,G,B: the pixel at (40, 40)), ``audio N`` every 50th
decoded audio buffer, ``deleted STATUS``, ``error TEXT``.
"""

import argparse
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

OFFERED = {
    "H264": "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
    "packetization-mode=(string)1,profile-level-id=(string)42e01f",
    "VP8": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    "OPUS": "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
    "encoding-params=(string)2",
}
DECODE = {
    "H264": "rtph264depay ! avdec_h264 ! videoconvert ! capsfilter caps=video/x-raw,format=RGB",
    "VP8": "rtpvp8depay ! vp8dec ! videoconvert ! capsfilter caps=video/x-raw,format=RGB",
    "OPUS": "rtpopusdepay ! opusdec",
}
PROBE = (40, 40)


def say(line):
    print(line, flush=True)


class Viewer:
    def __init__(self, url, token, codec):
        self.url, self.token, self.codec = url, token, codec
        self.location = None
        self.counts = {"video": 0, "audio": 0}
        self.pipeline = Gst.Pipeline.new("whep")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipeline.add(self.webrtc)
        self.webrtc.connect("pad-added", self.on_pad)
        recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
        for kind in (codec, "OPUS"):
            self.webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(OFFERED[kind]))

    def negotiate(self):
        self.pipeline.set_state(Gst.State.PLAYING)
        offer = self.call("create-offer", None, field="offer")
        self.call("set-local-description", offer)
        deadline = time.monotonic() + 10
        complete = GstWebRTC.WebRTCICEGatheringState.COMPLETE
        while self.webrtc.get_property("ice-gathering-state") != complete:  # no trickle: all in the offer
            if time.monotonic() > deadline:
                raise RuntimeError("ICE gathering did not complete")
            time.sleep(0.05)
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        status, headers, body = self.http("POST", self.url, sdp.encode())
        if status != 201:
            raise RuntimeError(f"POST answered {status}: {body.decode(errors='replace').strip()}")
        self.location = urllib.parse.urljoin(self.url, headers["Location"])
        say(f"posted {headers['Location']}")
        _, message = GstSdp.SDPMessage.new_from_text(body.decode())
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.call("set-remote-description", answer)

    def call(self, action, *args, field=None):
        """Emit one of webrtcbin's promise-taking actions, wait, and return a copy of its reply's
        ``field`` (PyGObject does not copy it, and the reply dies with the promise)."""
        promise = Gst.Promise.new()
        self.webrtc.emit(action, *args, promise)
        promise.wait()
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            raise RuntimeError(f"{action}: {reply.get_value('error')}")
        return None if field is None else reply.get_value(field).copy()

    def http(self, method, url, body=None):
        headers = {"Content-Type": "application/sdp"} if body is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.headers, refused.read()

    def on_pad(self, _webrtc, pad):
        """A received stream: depayload, decode, and count what comes out."""
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps().get_structure(0)
        kind = caps.get_string("media")
        name = caps.get_string("encoding-name").upper()
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)
        sink.set_property("sync", False)
        sink.connect("handoff", self.on_video if kind == "video" else self.on_audio)
        decode = Gst.parse_bin_from_description(f"queue ! {DECODE[name]}", True)
        self.pipeline.add(decode)
        self.pipeline.add(sink)
        decode.link(sink)
        decode.sync_state_with_parent()
        sink.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def on_video(self, _sink, buffer, pad):
        self.counts["video"] += 1
        count = self.counts["video"]
        if count % 10:
            return
        caps = pad.get_current_caps().get_structure(0)
        width, height = caps.get_int("width")[1], caps.get_int("height")[1]
        stride = (width * 3 + 3) // 4 * 4
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        if ok:
            x, y = PROBE
            at = y * stride + x * 3
            pixel = ",".join(str(value) for value in mapped.data[at : at + 3])
            buffer.unmap(mapped)
            say(f"frame {count} {width}x{height} {pixel}")

    def on_audio(self, _sink, _buffer, _pad):
        self.counts["audio"] += 1
        if self.counts["audio"] % 50 == 0:
            say(f"audio {self.counts['audio']}")

    def close(self):
        if self.location is not None:
            status, _, _ = self.http("DELETE", self.location)
            say(f"deleted {status}")
        self.pipeline.set_state(Gst.State.NULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--token")
    parser.add_argument("--codec", choices=["H264", "VP8"], default="H264")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    Gst.init(None)
    if args.check:
        missing = [name for name in ("webrtcbin", "nicesrc") if Gst.ElementFactory.find(name) is None]
        sys.exit(f"GStreamer elements missing: {missing}" if missing else 0)
    viewer = Viewer(args.url, args.token, args.codec)
    loop = GLib.MainLoop()
    failed = []

    def on_message(_bus, message):
        if message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            say(f"error {error.message}")
            failed.append(error.message)
            loop.quit()

    bus = viewer.pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    for number in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, number, loop.quit)
    try:
        viewer.negotiate()
        loop.run()
    except Exception as exc:
        say(f"error {exc}")
        failed.append(exc)
    finally:
        viewer.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
