"""Run one of the course's servers as its own process.

python -m helpers.servers selector 5000      # designs: threaded, selector, asyncio, socketserver
"""

import asyncio
import inspect
import sys

from . import DESIGNS


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in DESIGNS:
        print(f"usage: python -m helpers.servers {{{','.join(DESIGNS)}}} PORT", file=sys.stderr)
        return 2
    server, port = DESIGNS[argv[0]], int(argv[1])
    try:
        if inspect.iscoroutinefunction(server):
            asyncio.run(server(port))
        else:
            server(port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
