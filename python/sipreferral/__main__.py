"""``python3 -m sipreferral agent [OPTION]...``: see sipreferral.agent."""

import sys

from .agent import main


def _main(argv: list) -> int:
    if argv and argv[0] == "agent":
        return main(argv[1:])
    print("usage: python3 -m sipreferral agent [OPTION]...  (agent --help)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
