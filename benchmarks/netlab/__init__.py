"""A small real network on one machine: namespaces, NAT, a firewall, delay, jitter and loss.

- :mod:`benchmarks.netlab.namespaces`: :class:`Lab`, the topology (server, customer behind
  NAT, UDP-firewalled agent, TURN, an ``internet`` router), torn down whatever happens;
  :func:`cleanup_stale` for what a killed run left; :func:`unavailable` says why it cannot run.
- :mod:`benchmarks.netlab.impair`: :class:`Impairment` and :data:`PROFILES` (``clean``,
  ``wifi``, ``mobile``, ``bad``): user-space delay, jitter, loss and rate through TUN devices
  (this kernel has no ``netem``), switchable mid-run.
- :mod:`benchmarks.netlab.probe`: UDP/TCP echo, "who am I" and UDP ping to run inside the lab.
- :mod:`benchmarks.netlab.measure`: the impairment's accuracy and cost on this machine.
- :mod:`benchmarks.netlab.serve`: :func:`start_serve`, ``telepresence serve`` in the server namespace.
"""

from benchmarks.netlab.impair import PROFILES, Impairment, Link, Profile
from benchmarks.netlab.namespaces import PREFIX, ROLES, SITES, Lab, NetlabError, cleanup_stale, unavailable
from benchmarks.netlab.serve import start_serve

__all__ = [
    "PREFIX",
    "PROFILES",
    "ROLES",
    "SITES",
    "Impairment",
    "Lab",
    "Link",
    "NetlabError",
    "Profile",
    "cleanup_stale",
    "start_serve",
    "unavailable",
]
