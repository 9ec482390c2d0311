"""Reader for the tests/hostile corpora (shared by the hostile integration tests)."""
import os
import re

from harness import SRC


def unescape(s):
    """The escapes of tests/hostile/video_urls.tsv: \\xNN, \\t, \\\\, and \\*N; (repeat the previous byte to N bytes)."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n in "t\\":
            out += b"\t" if n == "t" else b"\\"
            i += 2
        elif n == "*":
            m = re.match(r"\*(\d+);", s[i + 1:])
            out += bytes([out[-1]]) * (int(m.group(1)) - len(out))
            i += 1 + m.end()
        else:
            raise ValueError("bad escape at %d in %r" % (i, s))
    return bytes(out)


def video_urls():
    """[(line, expected, allowed, input bytes)] from tests/hostile/video_urls.tsv."""
    rows = []
    with open(os.path.join(SRC, "hostile", "video_urls.tsv"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            expected, allowed, raw = line.split("\t", 2)
            rows.append((n, expected, allowed, unescape(raw)))
    return rows
