"""The data plane: frames in, frames out.

A library that never imports ``telepresence``: give it tracks and a layout, it
gives back one composite video track. Modules, one idea each: ``layout``
(geometry), ``stamp`` (timestamps that survive lossy coding), ``tracks`` (input
slots, drains, synthetic sources), ``compositor`` (``CompositorTrack``),
``peers`` (aiortc codec and latency settings), ``testing`` (loopback peers).
"""
