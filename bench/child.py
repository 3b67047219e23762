"""``python -m bench.child [CATLOG_DIR]``: the child process a contender's timed loop runs in.

Started by :class:`bench.children.Child`, never by hand. ``CATLOG_DIR`` (empty for the catlog
beside bench/) goes first on ``sys.path`` before anything imports ``catlog``, which is why this
module imports nothing of the harness at its top: :mod:`bench.tasks` and, through it, catlog and
the peers are imported only once the path is set. Then it answers requests line by line on
stdin and stdout (format in :mod:`bench.children`) until stdin closes. Anything a task prints
goes to stderr, so stdout carries only the replies.
"""

from __future__ import annotations

import json
import sys
import traceback


def main(argv: list[str]) -> int:
    replies = sys.stdout
    sys.stdout = sys.stderr
    if len(argv) > 1 and argv[1]:
        sys.path.insert(0, argv[1])
    import catlog  # noqa: PLC0415 - only once the path is set

    from . import tasks  # noqa: PLC0415 - imports catlog

    replies.write(json.dumps({"catlog": catlog.__file__}) + "\n")
    replies.flush()
    session = tasks.Session()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: dict[str, object] = {
                "reply": tasks.run(session, request["task"], request["args"])
            }
        except Exception:
            answer = {"error": traceback.format_exc()}
        replies.write(json.dumps(answer) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
