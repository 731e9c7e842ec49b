"""Co-sweep wrapper: the same as `a2q sweep` (see `a2q sweep --help`).

    python scripts/cosweep.py --datasets Cora,CiteSeer --targets 1.25,1.5,2,3,4 --configs 16x16,32x8 --jobs 2
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
