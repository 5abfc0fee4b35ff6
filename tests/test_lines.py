"""LineBuffer: whole lines out of arbitrary reads, and a bound on line length."""

from exporter.lines import LineBuffer


def test_partial_line_waits_for_its_end():
    buf = LineBuffer()
    assert buf.push(b"first line\nsecond ha") == b"first line\n"
    assert buf.pending == len(b"second ha")
    assert buf.push(b"lf\nthird") == b"second half\n"
    assert buf.finish() == b"third\n"
    assert buf.finish() == b""


def test_byte_by_byte_reads_give_the_same_lines():
    text = b"a 550 5.1.1 x\nbb\n\nccc\n"
    buf = LineBuffer()
    out = b"".join(buf.push(text[i : i + 1]) for i in range(len(text)))
    assert out == text


def test_long_line_is_cut_and_the_rest_skipped():
    buf = LineBuffer(max_line=10)
    out = buf.push(b"short\n" + b"x" * 25)
    assert out == b"short\n" + b"x" * 10 + b"\n"
    assert buf.take_cut() == 1
    assert buf.take_cut() == 0
    assert buf.pending == 0
    # The rest of the long line is dropped up to its newline.
    assert buf.push(b"yyyy") == b""
    assert buf.push(b"yy\nnext\n") == b"next\n"


def test_memory_stays_bounded_under_a_line_without_end():
    buf = LineBuffer(max_line=1000)
    for _ in range(1000):
        buf.push(b"z" * 4096)
        assert buf.pending <= 1000


def test_a_buffer_resumed_while_skipping_drops_the_rest_of_the_long_line():
    buf = LineBuffer(max_line=10)
    buf.push(b"x" * 25)
    assert buf.skipping
    resumed = LineBuffer(max_line=10, skipping=buf.skipping)  # after a restart
    assert resumed.push(b"rest of it\nnext\n") == b"next\n"
    assert not resumed.skipping
    assert resumed.take_cut() == 0


def test_a_run_of_nuls_longer_than_a_line_does_not_take_the_next_line_with_it():
    buf = LineBuffer(max_line=1000)
    hole = b"\0" * 5000  # what a crash leaves where the last writes were lost
    out = buf.push(b"before\n" + hole[:3000]) + buf.push(hole[3000:] + b"after 550 5.1.1\n")
    assert out == b"before\nafter 550 5.1.1\n"
    assert buf.take_cut() == 0


def test_a_partial_line_after_nuls_is_pending_by_its_bytes_in_the_file():
    buf = LineBuffer()
    buf.push(b"one\n" + b"\0" * 10 + b"tw")
    # A restart resumes at the end of "one\n": the NULs and "tw" are read again.
    assert buf.pending == 12
    assert buf.push(b"o\n") == b"two\n"
    assert buf.pending == 0
