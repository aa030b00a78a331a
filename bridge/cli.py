"""The `bridge` command: run, check, demo, report, and the quarantine and outbox tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import sys
import time
from pathlib import Path

from bridge.config import Config, load_config
from bridge.errors import BridgeError, ConfigurationError
from bridge.logs import setup_logging

log = logging.getLogger("bridge")


def _load(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    setup_logging(cfg.bridge.log_level, cfg)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from bridge.app import App

    cfg = _load(args)
    asyncio.run(App(cfg, config_path=str(Path(args.config).resolve())).run_until_signalled())
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:  # e.g. an Odoo call still waiting on a slow server: its job resumes from the journal
        log.info("exiting with %d call(s) still running in %s", len(stuck), ", ".join(stuck[:5]))
        logging.shutdown()
        os._exit(0)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bridge.checks import run_checks

    cfg = _load(args)
    ok = True
    for service, passed, line in asyncio.run(run_checks(cfg)):
        print(f"{'ok  ' if passed else 'FAIL'} {service:<5} {line}")  # imap:<mailbox>, oauth:<name> with several
        ok = ok and passed
    return 0 if ok else 1


def cmd_auth(args: argparse.Namespace) -> int:
    """The one-time OAuth2 consent of a mailbox (bridge/auth/login.py)."""
    from bridge.auth.login import login
    from bridge.errors import BridgeError

    cfg = _load(args)
    try:
        login(cfg, args.mailbox)
    except BridgeError as exc:
        print(f"auth login: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    """Backup (beside a running bridge), restore (into a stopped bridge's empty folder), stats."""
    from bridge import state_tools
    from bridge.statelock import try_lock_state

    cfg = _load(args)
    if args.action == "backup":
        manifest = state_tools.backup(cfg.state.dir, args.file)
        rows = ", ".join(f"{name} {count}" for name, count in manifest["tables"].items())
        print(f"{args.file}: {rows}; {len(manifest['files'])} token file(s)")
        return 0
    if args.action == "stats":
        print("\n".join(state_tools.stats(cfg.state.dir)))
        return 0
    lock = try_lock_state(cfg.state.dir)
    if lock is None:
        print(f"state restore: a bridge is running on {cfg.state.dir}: stop it first", file=sys.stderr)
        return 1
    try:
        manifest = state_tools.restore(args.file, cfg.state.dir)
    except BridgeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        lock.close()
    print(f"restored {', '.join(manifest['tables'])} into {cfg.state.dir}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Run one email again (bridge/replay.py); beside a running bridge or before it starts."""
    from bridge.replay import replay
    from bridge.statelock import lock_unless_running
    from bridge.store import Store

    cfg = _load(args)
    with lock_unless_running(cfg.state.dir):
        store = Store(cfg.state.dir)
        try:
            print(replay(cfg, store, uid=args.uid, message_id=args.message_id or "", mailbox=args.mailbox,
                         new_ticket=args.new_ticket))
        except BridgeError as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            store.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.demo import run_demo

    setup_logging("WARNING" if not args.verbose else "INFO", None)
    return run_demo(samples=Path(args.samples) if args.samples else None)


def _age(at: float) -> str:
    seconds = max(0, time.time() - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List quarantined emails, or put one back (see ``bridge.quarantine.retry`` for why this
    may run beside a running bridge)."""
    from bridge.statelock import lock_unless_running
    from bridge.store import Store

    cfg = _load(args)
    if args.action == "list":
        store = Store(cfg.state.dir)
        try:
            rows = sorted(store.quarantine.items(), key=lambda kv: kv[1].get("at", 0))
            if not rows:
                print("quarantine is empty")
            for key, rec in rows:
                print(f"{key}\t{_age(rec.get('at', 0))}\t{rec.get('from') or '-'}\t"
                      f"{(rec.get('subject') or '')[:60]!r}\t{rec.get('reason')}")
            return 0
        finally:
            store.close()
    from bridge.quarantine import retry

    with lock_unless_running(cfg.state.dir) as exclusive:
        store = Store(cfg.state.dir)
        try:
            moved = retry(cfg, store, args.key)
        finally:
            store.close()
    if not moved:
        print(f"{args.key}: not found in {cfg.imap.quarantine_folder}", file=sys.stderr)
        return 1
    later = "the bridge processes it again" if not exclusive else "the bridge processes it again when it starts"
    print(f"{args.key}: moved {moved} message(s) back to {cfg.imap.folder}; {later}")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """List effects, or queue one again.

    ``retry`` with no bridge running holds the state lock and resets the effect to pending in
    the outbox table (a bridge started later schedules every pending effect). With a bridge
    running it writes only a request (``request_requeue``): the outbox table is the bridge's
    (it keeps pending effects in memory and writes their records as they run), so the bridge
    applies the request itself and deletes it once applied.
    """
    from bridge.pipeline.outbox import REQUEUE_POLL_SECONDS, request_requeue, reset_for_retry
    from bridge.statelock import lock_unless_running
    from bridge.store import Store

    cfg = _load(args)
    if args.action == "list":
        store = Store(cfg.state.dir)
        try:
            rows = [(k, v) for k, v in store.outbox.items() if args.all or v.get("status") != "sent"]
            if not rows:
                print("outbox has nothing pending or dead")
            for key, rec in rows:
                print(f"{key}\t{rec['kind']}\t{rec['status']}\tattempts={rec['attempts']}\t{rec.get('last_error', '')}")
            return 0
        finally:
            store.close()
    with lock_unless_running(cfg.state.dir) as exclusive:
        store = Store(cfg.state.dir)
        try:
            record = store.outbox.get(args.key)
            if record is None:
                print(f"{args.key}: no such effect", file=sys.stderr)
                return 1
            if record["status"] == "sent":
                print(f"{args.key}: already sent", file=sys.stderr)
                return 1
            if exclusive:
                store.outbox.put(args.key, reset_for_retry(record))
                print(f"{args.key}: queued again; the bridge sends it when it starts")
            else:
                request_requeue(store.meta, args.key)
                print(f"{args.key}: retry requested; a running bridge picks it up within "
                      f"{REQUEUE_POLL_SECONDS:.0f}s (a stopped one when it starts)")
            return 0
        finally:
            store.close()


def cmd_sla(args: argparse.Namespace) -> int:
    from bridge.sla.report import SlaView, now_utc, since_moment

    cfg = _load(args)
    if not cfg.sla.policies:
        print("error: sla.policies is empty: there is nothing to measure", file=sys.stderr)
        return 2
    view = SlaView(cfg)
    try:
        now = now_utc()
        lines = view.show(args.ticket, now) if args.action == "show" else view.report(since_moment(args.since, now), now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        view.close()
    print("\n".join(lines))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The support leads' report over a period (bridge/reports/), read only like `sla report`."""
    from zoneinfo import ZoneInfo

    from bridge.reports.build import read_report, render
    from bridge.reports.period import period_of
    from bridge.sla.report import now_utc

    cfg = _load(args)
    now = now_utc()
    try:
        period = period_of(args.since, args.start, args.end, ZoneInfo(cfg.calendar.timezone), now)
        text = render(read_report(cfg, period, now, team=args.team, mailbox=args.mailbox), args.format)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.output}: {args.format} report, {period.label()}")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", "-c", default="config.yaml", help="path of config.yaml")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", parents=[config], help="run the service").set_defaults(func=cmd_run)
    sub.add_parser("check", parents=[config], help="validate the config and try every connection").set_defaults(
        func=cmd_check
    )
    demo = sub.add_parser("demo", help="run the whole flow against local stand-ins")
    demo.add_argument("--samples", help="folder of .eml files (default: samples/)")
    demo.add_argument("--verbose", "-v", action="store_true")
    demo.set_defaults(func=cmd_demo)

    quarantine = sub.add_parser("quarantine", help="list or retry quarantined emails")
    qsub = quarantine.add_subparsers(dest="action", required=True)
    qsub.add_parser("list", parents=[config])
    qretry = qsub.add_parser("retry", parents=[config])
    qretry.add_argument("key", help="the email key shown by `quarantine list`")
    quarantine.set_defaults(func=cmd_quarantine)

    outbox = sub.add_parser("outbox", help="list or re-queue outgoing effects")
    osub = outbox.add_subparsers(dest="action", required=True)
    olist = osub.add_parser("list", parents=[config])
    olist.add_argument("--all", action="store_true", help="include sent effects")
    oretry = osub.add_parser("retry", parents=[config])
    oretry.add_argument("key")
    outbox.set_defaults(func=cmd_outbox)

    sla = sub.add_parser("sla", help="SLA clocks of a ticket, or compliance over a period")
    ssub = sla.add_subparsers(dest="action", required=True)
    sshow = ssub.add_parser("show", parents=[config])
    sshow.add_argument("ticket", type=int)
    sreport = ssub.add_parser("report", parents=[config])
    sreport.add_argument("--since", default="7d", help="e.g. 7d or 36h (default 7d)")
    sla.set_defaults(func=cmd_sla)
    report = sub.add_parser("report", parents=[config], help="tickets, categories, recurring issues, people, "
                                                            "automation and SLA over a period")
    report.add_argument("--since", help="e.g. 7d or 36h, up to now (default 7d)")
    report.add_argument("--from", dest="start", help="first local day, YYYY-MM-DD (calendar.timezone)")
    report.add_argument("--to", dest="end", help="last local day, YYYY-MM-DD, included")
    report.add_argument("--team", default="", help="only tickets of this helpdesk team (or project)")
    report.add_argument("--mailbox", default="", help="only tickets that came in by this mailbox")
    report.add_argument("--format", choices=("text", "markdown", "csv", "html", "json"), default="text")
    report.add_argument("--output", "-o", help="write to this file instead of standard output")
    report.set_defaults(func=cmd_report)
    state = sub.add_parser("state", help="back up, restore or inspect the state folder")
    stsub = state.add_subparsers(dest="action", required=True)
    sbackup = stsub.add_parser("backup", parents=[config], help="a consistent copy, also while the bridge runs")
    sbackup.add_argument("file")
    srestore = stsub.add_parser("restore", parents=[config], help="into an empty state folder, bridge stopped")
    srestore.add_argument("file")
    stsub.add_parser("stats", parents=[config], help="table sizes, oldest unfinished work")
    state.set_defaults(func=cmd_state)
    replay = sub.add_parser("replay", parents=[config], help="run one email again (dedupe applies)")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--uid", type=int, help="its UID in the mailbox's folder (its done folder in move mode)")
    which.add_argument("--message-id", help="its Message-ID, with the angle brackets")
    replay.add_argument("--mailbox", default="", help="the mailbox name (default: the first)")
    replay.add_argument("--new-ticket", action="store_true",
                        help="open a new ticket for it even though Odoo holds it on one (logged)")
    replay.set_defaults(func=cmd_replay)
    auth = sub.add_parser("auth", help="OAuth2 consent of a mailbox (Microsoft 365, Google)")
    asub = auth.add_subparsers(dest="action", required=True)
    alogin = asub.add_parser("login", parents=[config], help="consent once; the refresh token is kept in state")
    alogin.add_argument("--mailbox", required=True, help="the mailbox name (one top-level imap: its folder)")
    auth.set_defaults(func=cmd_auth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
