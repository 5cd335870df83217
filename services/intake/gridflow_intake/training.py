"""A classification model trained in a process of its own (独立进程训练分类模型): intake under
nameko runs its workers as green threads on one eventlet hub, and a training in a thread of the
same process still takes the GIL from the hub half the time, for the 0.6-1.5 s it lasts; a
child process has a GIL of its own. The parent sends ``(categories, history, synonyms)``
pickled on stdin and reads the pickled model from stdout (a pipe between the process and its
own child: nothing else writes to it).

    python -m gridflow_intake.training < request.pickle > model.pickle
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any

from gridflow_common.domain import classification

# A child that has not answered within this long is killed and the refresh fails (the tick logs
# it; the current model stays in use and the next refresh tries again).
TIMEOUT_SECONDS = 120.0


def train_in_a_child(categories: Any, history: list[tuple[str, str]], synonyms: Any) -> Any:
    """``classification.train(categories, history, synonyms)`` in a child process; under
    eventlet the wait is green (the hub serves the other workers meanwhile)."""
    from eventlet.green import subprocess as green_subprocess

    done = green_subprocess.run(
        [sys.executable, "-m", "gridflow_intake.training"],
        input=pickle.dumps((categories, history, synonyms)),
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, done.args, stderr=done.stderr.decode("utf-8", "replace")[-2000:]
        )
    return pickle.loads(done.stdout)


# Background work: where cores are short, the replica's hub (serving reports) comes first.
NICENESS = 10


def main() -> None:
    os.nice(NICENESS)
    categories, history, synonyms = pickle.load(sys.stdin.buffer)
    model = classification.train(categories, history, synonyms)
    sys.stdout.buffer.write(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
