"""Connecting a sweep to a remote Dask scheduler: the trust model, TLS, and a quick failure.

Trust model.  Dask moves work and results between the client, the scheduler and the workers as
pickles, and unpickling runs code.  So whoever can talk to the scheduler, or sit between this
client and it, can make this process (and the workers) run anything as the user who started
them.  Use ``--scheduler`` only with a cluster you control; on any network but the local host,
use TLS (``tls://`` addresses with ``--tls-ca-file``, ``--tls-cert`` and ``--tls-key``: Dask's
``Security`` with encryption required), so that only holders of a certificate your CA signed can
take part.  A ``tcp://`` address that is not on this machine gets a warning before connecting.
A scheduler that does not answer within ``--connect-timeout`` seconds is a one-line error.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from gradpimsim.errors import UserError, clip, clip_repr

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def scheme_and_host(address: str) -> tuple[str, str]:
    """(``tcp``, ``host``) of ``tcp://host:port``; the scheme is ``tcp`` when omitted."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    return scheme.lower(), host.strip("[]")


def is_local(host: str) -> bool:
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scheduler_security(args: argparse.Namespace) -> Any:
    """Dask ``Security`` from the TLS options (None without them); checks the files exist and
    that TLS and the address agree."""
    files = {"--tls-ca-file": args.tls_ca_file, "--tls-cert": args.tls_cert,
             "--tls-key": args.tls_key}
    given = {k: v for k, v in files.items() if v}
    if not given:
        return None
    if not args.scheduler:
        raise UserError(f"{', '.join(given)} apply to --scheduler; give the scheduler's tls:// "
                        "address or drop them")
    from gradpimsim.io_safety import check_input_file

    for option, path in given.items():
        check_input_file(option, path)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("--tls-cert and --tls-key go together: give both, or neither")
    from distributed.security import Security

    return Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert,
                    tls_client_key=args.tls_key, require_encryption=True)


def connect(address: str, security: Any, timeout: float) -> Any:
    """A Dask client of the scheduler at ``address``, or a one-line :class:`UserError`."""
    scheme, host = scheme_and_host(address)
    if scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
        raise UserError(f"--scheduler {clip_repr(address)}: unknown protocol {clip_repr(scheme)};"
                        " use tls://host:port (or tcp://host:port on a trusted network)")
    if security is not None and scheme != "tls":
        raise UserError(f"--scheduler {clip(address)}: the TLS options need a tls:// address")
    if scheme == "tls" and security is None:
        raise UserError(f"--scheduler {clip(address)}: a tls:// scheduler needs --tls-ca-file, "
                        "--tls-cert and --tls-key")
    if scheme == "tcp" and not is_local(host):
        print(f"warning: connecting to {clip(address)} without TLS: the scheduler and anyone on "
              "the network path can make this process run code (Dask exchanges pickles); use "
              "a tls:// address with --tls-ca-file/--tls-cert/--tls-key (docs/sweeps.md)",
              file=sys.stderr, flush=True)
    from dask.distributed import Client

    try:
        return Client(address, security=security, timeout=timeout)
    except Exception as exc:  # refused, timed out, bad address, or garbage from the other end
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise UserError(f"--scheduler {clip(address)}: no Dask scheduler answered within "
                        f"{timeout:g} s ({clip(reason, 160)}); check the address and that the "
                        "scheduler runs, or drop --scheduler to start a local cluster") from None
