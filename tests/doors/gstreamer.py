"""GStreamer clients this project did not write, for the interop tests: Debian's
simple-whip-client (``whip-client``, GStreamer's webrtcbin publishing over WHIP) and a webrtcbin
WHEP viewer run by Debian's own Python (tests/doors/gst_whep_viewer.py).

On Debian 12 ``whip-client`` aborts at start ("libsoup2 symbols detected"): it links libsoup 2
for its HTTP, while webrtcbin's ICE library, libnice, links libgupnp-igd (UPnP port mapping),
whose libgupnp links libsoup 3, and libsoup 3 refuses to load beside 2. UPnP is of no use on
loopback (nor to a publisher reaching a server), so the test gives ``whip-client`` a stand-in
libgupnp-igd, built here with gcc, whose only thread constructor returns NULL: libnice then runs
without UPnP (it checks that pointer) and libsoup 3 is never loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

WHIP_CLIENT = shutil.which("whip-client")
GST_INSPECT = shutil.which("gst-inspect-1.0")
GCC = shutil.which("gcc")
DEBIAN_PYTHON = Path("/usr/bin/python3")
VIEWER = Path(__file__).with_name("gst_whep_viewer.py")

# libnice's four imports from libgupnp-igd (`nm -D --undefined-only libnice.so.10`).
NO_UPNP_C = """
/* libgupnp-igd without UPnP: libnice gets no IGD thread and never loads gupnp or libsoup 3. */
void *gupnp_simple_igd_thread_new(void) { return 0; }
unsigned long gupnp_simple_igd_get_type(void) { return 0; }
void gupnp_simple_igd_add_port(void) {}
void gupnp_simple_igd_remove_port_local(void) {}
"""
NO_UPNP_SONAME = "libgupnp-igd-1.0.so.4"


def missing_for_whip(*elements: str) -> str | None:
    """Why the whip-client tests cannot run here (None: they can)."""
    for tool, name in ((WHIP_CLIENT, "whip-client (apt-get install simple-whip-client)"), (GCC, "gcc")):
        if tool is None:
            return f"{name} is not installed"
    return _missing_elements("webrtcbin", "nicesrc", *elements)


def missing_for_viewer(*elements: str) -> str | None:
    """Why the webrtcbin WHEP viewer cannot run here (None: it can)."""
    if not DEBIAN_PYTHON.exists():
        return f"Debian's Python ({DEBIAN_PYTHON}) is not installed"
    probe = subprocess.run(
        [str(DEBIAN_PYTHON), str(VIEWER), "--check"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        return (
            "python3-gi with GStreamer's typelibs (apt-get install gir1.2-gst-plugins-bad-1.0): "
            + (probe.stderr.strip().splitlines() or ["unavailable"])[-1]
        )
    return _missing_elements("webrtcbin", "nicesrc", *elements)


def _missing_elements(*elements: str) -> str | None:
    if GST_INSPECT is None:
        return "gst-inspect-1.0 is not installed (apt-get install gstreamer1.0-tools)"
    for element in elements:
        # Not --exists, which says no for elements of rank none (nicesrc).
        found = subprocess.run([GST_INSPECT, element], capture_output=True, timeout=30)
        if found.returncode != 0:
            return f"the GStreamer element {element} is not installed"
    return None


def no_upnp_library(directory: Path) -> Path:
    """Build the stand-in libgupnp-igd into ``directory`` (for LD_LIBRARY_PATH) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "no_upnp.c"
    source.write_text(NO_UPNP_C)
    assert GCC is not None
    subprocess.run(
        [GCC, "-shared", "-fPIC", "-nostdlib", f"-Wl,-soname,{NO_UPNP_SONAME}", "-o",
         str(directory / NO_UPNP_SONAME), str(source)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return directory


def video_pipeline(pattern: str = "blue", codec: str = "VP8") -> str:
    """whip-client's ``-V``: a live test pattern, encoded and payloaded for webrtcbin."""
    raw = f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=640,height=360,framerate=15/1"
    encode, payload = {
        "VP8": ("vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96", 96),
        "H264": (
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30"
            " ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1",
            102,
        ),
    }[codec]
    caps = f"application/x-rtp,media=video,encoding-name={codec},payload={payload}"
    return f"{raw} ! videoconvert ! {encode} ! {caps}"


def audio_pipeline(frequency: int = 660) -> str:
    """whip-client's ``-A``: a live sine tone in Opus."""
    return (
        f"audiotestsrc is-live=true wave=sine freq={frequency} volume=0.5 ! audioconvert ! audioresample"
        " ! opusenc ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
    )


class GstProcess:
    """A client process whose output goes to a log file (read for failure messages)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def expect(
        self, word: str, timeout: float = 10, after: Callable[[list[str]], bool] = lambda _: True
    ) -> list[str]:
        """The words of the first output line that starts with ``word`` (and passes ``after``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for line in self.log.read_text(errors="replace").splitlines():
                words = line.split()
                if words and words[0] == word and after(words):
                    return words
            assert self.process.returncode is None, f"exited ({self.process.returncode}) before {word!r}"
            assert asyncio.get_running_loop().time() < deadline, f"no {word!r} line in {timeout} s"
            await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """Send ``sig`` and wait for the exit; SIGKILL if it does not come within ``timeout``."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def gst_process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[GstProcess]:
    """Run ``args`` until the block ends (then SIGKILL it if still running, and reap it)."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    client = GstProcess(process, log)
    try:
        yield client
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def whip_client(
    url: str, token: str, workdir: Path, *, video: str, audio: str | None = None
) -> contextlib.AbstractAsyncContextManager[GstProcess]:
    """Debian's whip-client publishing to ``url``: candidates in the offer (``-n``: the server
    takes no trickled ones), run with the stand-in libgupnp-igd (see the module's docstring)."""
    args = [WHIP_CLIENT or "whip-client", "-u", url, "-t", token, "-n", "-o", "-V", video]
    if audio is not None:
        args += ["-A", audio]
    shim = no_upnp_library(workdir / "no-upnp")
    env = {"LD_LIBRARY_PATH": f"{shim}:{os.environ.get('LD_LIBRARY_PATH', '')}".rstrip(":")}
    return gst_process(args, workdir / "whip-client.log", env)


def whep_viewer(url: str, workdir: Path, token: str | None = None, codec: str = "H264"):
    """tests/doors/gst_whep_viewer.py (webrtcbin) watching ``url``, run by Debian's Python."""
    args = [str(DEBIAN_PYTHON), str(VIEWER), url, "--codec", codec] + (["--token", token] if token else [])
    return gst_process(args, workdir / "whep-viewer.log")
