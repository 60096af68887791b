"""A development mail catcher: an SMTP server (aiosmtpd) that accepts every
mail and writes it as an ``.eml`` file into a folder, so that ``make run``
and the tests can read what notifications-service sent.

    python -m notifications.mailcatcher [--host 127.0.0.1] [--port 8025] [--dir .data/mail]

Never point a production service at it: it delivers nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import os
import signal
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope

from verbund.settings import data_dir

_sequence = itertools.count(1)


class FolderHandler:
    """Writes each accepted mail to ``folder`` (whole files only: written aside, then renamed)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        name = f"{time.time_ns()}-{os.getpid()}-{next(_sequence):06d}"
        headers = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        partial = self.folder / f".{name}.tmp"
        partial.write_bytes(headers.encode() + envelope.original_content)
        partial.rename(self.folder / f"{name}.eml")
        return "250 Message accepted for delivery"


def read_mailbox(folder: Path | str) -> list[EmailMessage]:
    """Every mail caught so far, oldest first, parsed."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))]


async def serve(host: str, port: int, folder: Path) -> None:
    loop = asyncio.get_running_loop()
    handler = FolderHandler(folder)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mailcatcher.local", enable_SMTPUTF8=True, decode_data=False), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"mail catcher listening on smtp://{host}:{port}, writing to {folder}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifications.mailcatcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("MAILCATCHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAILCATCHER_PORT", "8025")))
    parser.add_argument("--dir", default=os.environ.get("MAILCATCHER_DIR"), help="default: <data folder>/mail")
    args = parser.parse_args(argv)
    folder = Path(args.dir) if args.dir else data_dir() / "mail"
    try:
        asyncio.run(serve(args.host, args.port, folder))
    except OSError as exc:
        print(f"mail catcher could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
