"""Socket activation: the listening sockets systemd passes (--web.systemd-socket).

systemd passes them as file descriptors from 3 on, says how many in
LISTEN_FDS, and names the process meant to take them in LISTEN_PID
(sd_listen_fds(3)).
"""

from __future__ import annotations

import os
import socket

LISTEN_FDS_START = 3


def systemd_sockets() -> list[socket.socket]:
    """The listening TCP sockets passed to this process. The LISTEN_*
    variables are taken out of the environment, so that a child (journalctl)
    does not take the sockets for its own. ValueError says what is wrong."""
    pid = os.environ.pop("LISTEN_PID", None)
    count = os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if count is None or pid is None:
        raise ValueError("--web.systemd-socket: no sockets were passed (LISTEN_FDS and LISTEN_PID are not set); "
                         "start it through its .socket unit, or use --web.listen-address instead")
    if pid != str(os.getpid()):
        raise ValueError(f"--web.systemd-socket: the sockets were passed to process {pid}, not to this one "
                         f"({os.getpid()})")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--web.systemd-socket: LISTEN_FDS is {count!r}, not a number of sockets")
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        try:
            os.set_inheritable(fd, False)  # not passed on to children either
            sock = socket.socket(fileno=fd)
        except OSError as err:
            raise ValueError(f"--web.systemd-socket: file descriptor {fd} is not a socket ({err.strerror})") from err
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM or not listening:
            raise ValueError(f"--web.systemd-socket: file descriptor {fd} is not a listening TCP socket; "
                             "the .socket unit must use ListenStream= with an address and port")
        sockets.append(sock)
    return sockets
