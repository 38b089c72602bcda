"""BlockReader: byte blocks read as one file, whatever the read sizes."""

import io

from retainwise.uploads.blocks import BlockReader


def test_blocks_read_back_as_the_bytes_they_hold_at_any_read_size():
    blocks = [b"rank,customer_id\n", b"", b"1,c", b"7\n2,c9\n"]
    assert BlockReader(blocks).read() == b"".join(blocks)
    buffered = io.BufferedReader(BlockReader(iter(blocks)), buffer_size=3)
    assert [buffered.read(4) for _ in range(8)][:7] == [
        b"rank",
        b",cus",
        b"tome",
        b"r_id",
        b"\n1,c",
        b"7\n2,",
        b"c9\n",
    ]
