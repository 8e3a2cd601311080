"""The exec and port-forward wire formats on their own: the exit Status kubectl parses, SPDY/3 frames and
header blocks compressed with the spec's dictionary as a SPDY peer (spdystream) compresses them."""

from __future__ import annotations

import hashlib
import struct
import zlib

from sandbox.kube.apiserver import podexec, portforward


def test_exit_status_is_what_kubectl_turns_into_its_exit_code() -> None:
    assert podexec.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failed = podexec.exit_status(7, ["sh", "-c", "exit 7"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_the_dictionary_is_spdy3s() -> None:
    assert len(portforward.DICTIONARY) == 1423
    assert hashlib.sha256(portforward.DICTIONARY).hexdigest() == portforward.DICTIONARY_SHA256


def test_frames_and_header_blocks_round_trip_as_a_peer_sends_them() -> None:
    headers = {"streamtype": "data", "port": "5432", "requestid": "0"}
    peer = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=portforward.DICTIONARY)
    block = peer.compress(portforward.header_block(headers)) + peer.flush(zlib.Z_SYNC_FLUSH)
    syn = portforward.control_frame(portforward.SYN_STREAM, struct.pack(">IIBB", 3, 0, 0, 0) + block)
    first, second = struct.unpack_from(">II", syn)
    assert first == 0x80030001 and second & 0xFFFFFF == len(syn) - 8
    inflate = zlib.decompressobj(zdict=portforward.DICTIONARY)
    assert portforward.parse_headers(inflate.decompress(syn[18:])) == headers
    data = portforward.data_frame(3, b"hello", portforward.FLAG_FIN)
    assert data == struct.pack(">II", 3, (portforward.FLAG_FIN << 24) | 5) + b"hello"
