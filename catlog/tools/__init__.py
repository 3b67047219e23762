"""The data-directory tools of spec/tools.md, one module per tool; :mod:`catlog.cli` runs them.

``check`` (TOOL-5 .. TOOL-9), ``dump`` (TOOL-10 .. TOOL-12, TOOL-20), ``repair`` (TOOL-13 ..
TOOL-19), ``compact`` (TOOL-22, TOOL-42), ``map`` (TOOL-30 .. TOOL-35) and ``export`` (TOOL-43 ..
TOOL-45) each have a module of that name. What they share has a module of its own:
:mod:`~catlog.tools.status` the exit statuses every tool follows (TOOL-38 .. TOOL-41),
:mod:`~catlog.tools.listing` reading the segments of a directory a store may be changing (TOOL-36,
TOOL-37), :mod:`~catlog.tools.text` how bytes and times are written for people, and
:mod:`~catlog.tools.progress` the progress bar (TOOL-9).

What the bytes of a segment hold is decided in :mod:`catlog.scan`, what repair does to the files in
:mod:`catlog.repair`, and what the map draws in :mod:`catlog.datamap`: these modules are the edge
that prints.
"""
