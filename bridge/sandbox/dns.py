"""A loopback UDP DNS server answering TXT queries from a dict: the DKIM/ARC key publisher of the tests."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT


class DnsServer:
    """Serves ``records`` (name → TXT text) on 127.0.0.1 at ``port`` after ``start()``.

    The dict is read at every query, so a test may change it while the server runs. Names
    compare case-insensitively without the trailing dot; an unknown name is NXDOMAIN, a known
    name asked for another type an empty answer. A response too big for the query's UDP size
    is sent truncated (TC), as there is no TCP listener.
    """

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.port = 0
        self.queries = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DnsServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(self._sock,), name="dns-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        sock.sendto(b"", ("127.0.0.1", self.port))  # wake the loop, which then sees it should end
        if self._thread is not None:
            self._thread.join(timeout=5)
        sock.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        while self._sock is sock:
            wire, client = sock.recvfrom(65535)
            if self._sock is not sock:
                return
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue  # not a DNS query: nothing to answer
            self.queries += 1
            response = self._answer(query)
            size = max(query.payload, 512) if query.edns >= 0 else 512
            try:
                sock.sendto(response.to_wire(max_size=size), client)
            except dns.exception.TooBig:
                truncated = dns.message.make_response(query)
                truncated.flags |= dns.flags.TC
                sock.sendto(truncated.to_wire(), client)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        records = {name.lower().rstrip("."): text for name, text in self.records.items()}
        text = records.get(question.name.to_text(omit_final_dot=True).lower())
        if text is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            data = text.encode()
            chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]  # 255 bytes a string
            rdata = TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
            response.answer.append(dns.rrset.from_rdata(question.name, 60, rdata))
        return response
