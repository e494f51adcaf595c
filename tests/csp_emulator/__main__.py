"""Run the CSP emulator as a separate process.

    PYTHONPATH=tests python -m csp_emulator --port 0 --seed seed.json --state-dir DIR [--latency 0.02]

When the server is ready, the emulator writes DIR/ca.pem, then DIR/emulator.json with the url, api_host, ca_path and
pid, and prints one "CSP emulator listening on URL" line to stdout. It logs one line per API request to stderr and
exits with status 0 on SIGTERM or SIGINT, after removing DIR/emulator.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from . import Emulator

logger = logging.getLogger("csp_emulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m csp_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port to bind, 0 for a free port (default: 0)")
    parser.add_argument("--seed", type=Path, help="JSON seed file with orgs, credentials and settings")
    parser.add_argument("--state-dir", type=Path, required=True, help="directory for ca.pem and emulator.json")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to sleep before handling each API request (default: 0)"
    )
    return parser.parse_args(argv)


def write_ready_file(path: Path, emulator: Emulator) -> None:
    """Write the connection details to path atomically, so a reader never sees a partial file."""
    details = {"url": emulator.url, "api_host": emulator.api_host, "ca_path": emulator.ca_path, "pid": os.getpid()}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop_requested = threading.Event()
    received_signals: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only set the event here: logging from a signal handler could deadlock on the handler's lock.
        received_signals.append(signum)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        seed = json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else None
        emulator = Emulator(port=args.port, latency=args.latency, state_dir=args.state_dir, host=args.host)
        if seed is not None:
            emulator.seed(seed)
        emulator.start()
    except (OSError, ValueError) as error:
        logger.error("Cannot start the CSP emulator: %s", error)
        return 2

    ready_file = args.state_dir / "emulator.json"
    try:
        write_ready_file(ready_file, emulator)
        print(f"CSP emulator listening on {emulator.url}", flush=True)
        logger.info("CA certificate at %s, connection details at %s", emulator.ca_path, ready_file)
        stop_requested.wait()
        logger.info("Received %s, stopping", signal.Signals(received_signals[0]).name)
    finally:
        ready_file.unlink(missing_ok=True)
        emulator.stop()
    logger.info("Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
