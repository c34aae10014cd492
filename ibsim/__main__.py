"""Command line: ``python -m ibsim --host H --port P [options]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from datetime import datetime

from ibsim.server import IBSim


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (its help is the CLI's documentation)."""
    parser = argparse.ArgumentParser(
        prog="python -m ibsim",
        description="A loopback IB Gateway simulator speaking the TWS API socket protocol "
        "(server versions 157..178: each client gets min(its max, 178)). Connect ib_async "
        "to it like to a paper gateway.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=4002, help="API port; 0 picks a free port (default 4002)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="replay <SYMBOL>.parquet|.csv bars from DIR instead of synthetic",
    )
    parser.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    parser.add_argument(
        "--pacing",
        choices=("strict", "off"),
        default="strict",
        help="enforce IBKR pacing and message-rate limits (default strict)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        metavar="ISO",
        help="simulated start time, e.g. 2024-03-05T15:00:00+00:00",
    )
    _add_session_options(parser)
    return parser


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    """Options of the simulated gateway itself: control port, account, login zone, logging."""
    parser.add_argument(
        "--control-port",
        type=int,
        metavar="P",
        help="also accept JSON fault commands on this port (0 = free port)",
    )
    parser.add_argument("--account", default="DU1234567", help="managed account id")
    parser.add_argument(
        "--cash", type=float, default=1_000_000.0, help="starting cash in USD (default 1e6)"
    )
    parser.add_argument(
        "--participation",
        type=float,
        metavar="F",
        help="fraction of each 1-minute bar's volume one order may fill (default: no cap)",
    )
    parser.add_argument(
        "--time-zone",
        default="UTC",
        metavar="TZ",
        help="TWS login zone: how an endDateTime without a zone is read (default UTC)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level")


async def serve(args: argparse.Namespace) -> None:
    """Run until interrupted, printing the chosen ports first."""
    sim = IBSim(
        host=args.host,
        port=args.port,
        seed=args.seed,
        pacing=args.pacing,
        speed=args.speed,
        data_dir=args.data,
        account=args.account,
        start=args.start,
        control_port=args.control_port,
        time_zone=args.time_zone,
        cash=args.cash,
        participation=args.participation,
    )
    await sim.start()
    print(f"ibsim listening on {args.host}:{sim.port}", flush=True)
    if sim.control.port is not None:
        print(f"ibsim control on {args.host}:{sim.control.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
