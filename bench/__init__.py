"""The benchmark harness for catlog, run as ``python -m bench`` (see bench/README.md).

catlog's performance targets are ratios against peers measured in the same run on the same disk,
so a number here means something only next to the peer numbers printed beside it. The harness is
not part of the installed package: it lives beside ``catlog/`` and is run from the repository root.
"""
