"""A virtual LE radio shared between processes: one bumble ``LocalLink``, one controller per HCI client.

The process that owns the radio (the virtual device) creates a :class:`VirtualRadio`
and serves it on an AF_UNIX (or TCP) socket. Every host that connects to the socket
(``bumble.transport.open_transport("unix:PATH")``, as the bleak bumble backend does)
gets a fresh virtual :class:`bumble.controller.Controller` on the shared link. When a
client's socket closes, its controller's connections are terminated towards their peers
(reason 0x08, connection timeout, as a real supervision timeout would) and the
controller leaves the link: a crashed host never leaves a peripheral connected.

In-process hosts (the peripheral bridge) attach with :meth:`VirtualRadio.local_controller`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from bumble import hci, ll
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import PacketParser

log = logging.getLogger(__name__)

REASON_CONNECTION_TIMEOUT = 0x08
REASON_REMOTE_USER_TERMINATED = 0x13


class _Controller(Controller):
    """bumble's virtual controller, completing a cancelled connection attempt as the spec says.

    bumble 0.0.236 acknowledges LE Create Connection Cancel but never ends the pending
    connection (Core Vol 4 Part E 7.8.13: an LE Connection Complete event with status
    Unknown Connection Identifier), so a host that gives up waiting hangs.
    """

    #: out of range (``VirtualRadio.set_out_of_range``): its advertising reaches nobody, so
    #: no central finds it or connects to it (bumble connects on the advertiser's PDU)
    out_of_range = False

    def send_advertising_pdu(self, packet) -> None:
        if not self.out_of_range:
            super().send_advertising_pdu(packet)

    def on_hci_le_create_connection_cancel_command(self, command):
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)

        def complete() -> None:
            self.send_hci_packet(hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR, connection_handle=0,
                role=hci.Role.CENTRAL, peer_address_type=pending.peer_address_type,
                peer_address=pending.peer_address, connection_interval=0, peripheral_latency=0,
                supervision_timeout=0, central_clock_accuracy=0))

        asyncio.get_running_loop().call_soon(complete)  # after the command's own completion
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def send_hci_packet(self, packet) -> None:
        """bumble 0.0.236 answers an active scan with the advertising data again as the
        scan response (legacy reports), or with no scan response at all (extended
        reports); give the advertiser's own scan response data instead, as a real
        controller does (e.g. the Nape's security mode byte). Extended reports carry it
        appended to the advertising data, in the same report (no extra HCI traffic)."""
        if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            for report in packet.reports:
                if report.event_type == hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP:
                    resp = self._scan_response_of(report.address)
                    if resp is not None:
                        report.data = resp
        elif isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            for report in packet.reports:
                resp = self._scan_response_of(report.address)
                if resp and not bytes(report.data).endswith(resp):
                    report.data = bytes(report.data) + resp
        super().send_hci_packet(packet)

    def _scan_response_of(self, address) -> bytes | None:
        for c in getattr(self.link, "controllers", ()):
            for adv in [getattr(c, "le_legacy_advertiser", None),
                        *getattr(c, "advertising_sets", {}).values()]:
                if adv is not None and adv.address == address and adv.scan_response_data:
                    return bytes(adv.scan_response_data)
        return None


class _SocketSink:
    """Controller -> host direction: HCI packets written to the client's socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def on_packet(self, packet: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(packet)


class VirtualRadio:
    """One shared virtual LE radio.

    Attributes:
        link: the bumble ``LocalLink`` every controller is attached to.
        clients: controllers currently served to socket clients.
    """

    def __init__(self) -> None:
        self.link = LocalLink()
        self.clients: set[Controller] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._paths: list[Path] = []
        self._n = 0

    def local_controller(self, name: str, public_address: str | None = None) -> Controller:
        """A controller for a host in this process (wire it with ``Host(c, AsyncPipeSink(c))``)."""
        return _Controller(name, link=self.link, public_address=public_address)

    async def serve_unix(self, path: str | os.PathLike[str]) -> None:
        """Serve HCI on an AF_UNIX socket at ``path`` (an existing stale socket is replaced)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        self._servers.append(await asyncio.start_unix_server(self._client, str(p)))
        self._paths.append(p)

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve HCI on TCP; returns the port."""
        server = await asyncio.start_server(self._client, host, port)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._n += 1
        controller = _Controller(f"hci-client-{self._n}", link=self.link)
        controller.host = _SocketSink(writer)
        parser = PacketParser(controller)
        self.clients.add(controller)
        log.debug("HCI client %d connected", self._n)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                parser.feed_data(data)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a malformed client must not take the radio down
            log.exception("HCI client %d failed", self._n)
        finally:
            self.clients.discard(controller)
            self.remove_controller(controller, REASON_CONNECTION_TIMEOUT)
            writer.close()
            log.debug("HCI client %d gone", self._n)

    def remove_controller(self, controller: Controller, reason: int = REASON_CONNECTION_TIMEOUT) -> None:
        """Take a controller off the air: stop its advertising, drop its links."""
        controller.host = None
        controller.le_legacy_advertiser.stop()
        for adv_set in list(controller.advertising_sets.values()):
            adv_set.stop()
        controller.le_scan_enable = False
        controller.pending_le_connection = None
        for conn in list(controller.le_connections.values()):
            with contextlib.suppress(Exception):
                conn.send_ll_control_pdu(ll.TerminateInd(reason))
        controller.le_connections.clear()
        if controller in self.link.controllers:
            self.link.remove_controller(controller)

    def set_out_of_range(self, controller: Controller, away: bool) -> int:
        """Take ``controller`` out of range of every other one (``away``: its links drop as
        on a supervision timeout, its advertising reaches nobody) or bring it back.
        Returns the number of links dropped."""
        controller.out_of_range = away
        return self.drop_links() if away else 0

    def drop_links(self, reason: int = REASON_CONNECTION_TIMEOUT) -> int:
        """Terminate every LE connection on the radio, both ends (a link loss).

        Returns the number of connections dropped.
        """
        n = 0
        for c in list(self.link.controllers):
            for conn in list(c.le_connections.values()):
                if conn.role != hci.Role.CENTRAL:
                    continue
                with contextlib.suppress(Exception):
                    conn.send_ll_control_pdu(ll.TerminateInd(reason))
                c.on_le_disconnected(conn, reason)
                n += 1
        return n

    async def close(self) -> None:
        for s in self._servers:
            s.close()
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._servers.clear()
        for p in self._paths:
            with contextlib.suppress(OSError):
                p.unlink()
        self._paths.clear()
