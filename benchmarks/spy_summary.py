"""Summarise py-spy's collapsed stacks (``py-spy record --format raw``): where the server's time goes.

    python benchmarks/spy_summary.py /tmp/spy/sqlite-1000000-saturation.txt [--top 40] [--match labelvault]

Prints, for the frames whose file or function contains ``--match`` (every frame when empty), the
share of samples in which the frame is on the stack (inclusive) and at the top of it (own time),
plus the share of samples of idle threads (waiting in the thread pool, on the event loop's
selector, on a lock), which py-spy also records unless ``--idle`` is off.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="Only frames whose text contains this.")
    parser.add_argument("--thread", default="", help="Only stacks whose first frame contains this (a thread name).")
    args = parser.parse_args()

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if args.thread and args.thread not in stack.split(";", 1)[0]:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            if args.match in frame:
                inclusive[frame] += count
        if args.match in frames[-1]:
            own[frames[-1]] += count
    print(f"{total} samples")
    print("\ninclusive (on the stack):")
    for frame, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("\nown (top of the stack):")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
