"""Redis inline commands: one line of words, such as ``PING\\r\\n`` (spec/protocol.md, PROTO-86).

Health checks (HAProxy's ``option redis-check``, many load balancers) and ``redis-benchmark``'s
first test send a command as a line of text instead of a RESP array. :func:`split_words` splits
such a line exactly as Redis's ``sdssplitargs`` does (src/sds.c): words are separated by blanks;
a word may be written in double quotes, with the escapes ``\\n \\r \\t \\b \\a \\xHH`` and a
backslash before any other character standing for that character, or in single quotes, where only
``\\'`` is an escape. A closing quote must be followed by a blank or the end of the line. The line
ends at its first NUL byte, as a C string does.
"""

from __future__ import annotations

from typing import Final

_BLANKS: Final = frozenset(b" \t\n\v\f\r")
"""C's isspace(): what separates words."""
_ENDS_WORD: Final = frozenset(b" \n\r\t")
"""What ends an unquoted word (sdssplitargs's switch: not \\v or \\f)."""
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


def split_words(line: bytes) -> list[bytes] | None:
    """PROTO-86: the words of an inline command, or None for unbalanced quotes."""
    line = line.split(b"\0", 1)[0]
    words: list[bytes] = []
    end = len(line)
    i = 0
    while True:
        while i < end and line[i] in _BLANKS:
            i += 1
        if i >= end:
            return words
        word = bytearray()
        quote = 0
        while True:
            byte = line[i] if i < end else 0
            if quote == 34:  # inside "double quotes"
                if byte == 0:
                    return None
                if byte == 92 and i + 3 < end and _hex_escape(line, i):
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if byte == 92 and i + 1 < end:
                    word.append(_ESCAPES.get(line[i + 1], line[i + 1]))
                    i += 2
                    continue
                if byte == 34:
                    if i + 1 < end and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                word.append(byte)
            elif quote == 39:  # inside 'single quotes'
                if byte == 0:
                    return None
                if byte == 92 and i + 1 < end and line[i + 1] == 39:
                    word.append(39)
                    i += 2
                    continue
                if byte == 39:
                    if i + 1 < end and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                word.append(byte)
            elif byte == 0 or byte in _ENDS_WORD:
                i += 1
                break
            elif byte in (34, 39):
                quote = byte
            else:
                word.append(byte)
            i += 1
        words.append(bytes(word))


def _hex_escape(line: bytes, i: int) -> bool:
    return line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX
