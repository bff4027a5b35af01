"""`watcher status`: what the store says of each subscription's polls, each reader's
undelivered papers and digests, the records still awaited, the follow-ups and the daemon, as
data (its --json output) and as lines for a terminal. Reads the store; writes nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from watcher.followups import META_KEY, RETRY_AFTER_FAILURE, last_refresh
from watcher.redact import safe_message
from watcher.subscriptions import reader_reference
from watcher.toml_reading import format_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.config import Config
    from watcher.store import Store


def status_report(store: Store, config: Config, now: datetime) -> dict[str, Any]:
    """What `watcher status` shows, as data (its --json output)."""
    undelivered, awaiting = store.outbox.awaiting_delivery()
    daemon = daemon_status(store.facts.get("heartbeat"), store.facts.get("daemon"), now)
    digests = _undelivered_digests(store)
    # Every pending digest is among the undelivered ones: counted here, not read again (with
    # the message each keeps for its next attempt).
    pending = sum(d["state"] == "pending" for listed in digests.values() for d in listed)
    return {
        "config": str(config.path),
        "store": store.display_url,
        "articles": store.articles.count(),
        "daemon_heartbeat": daemon["heartbeat"],
        "daemon": daemon,
        "subscriptions": _subscription_rows(store, config),
        "recipients": [
            {
                "address": r,
                # What their requests to leave or pause carry in their subject (the digest's
                # way out, digest.build._way_out).
                "reference": reader_reference(r),
                "undelivered": undelivered.get(r, 0),
                "awaiting_record": awaiting.get(r, 0),
                "digests": digests.get(r, []),
            }
            for r in sorted({r for s in config.subscriptions for r in s.recipients})
        ],
        "awaiting_records": awaited_records(store, config),
        "pending_digests": pending,
        "followups": followups_status(store, config, now),
    }


def followups_status(store: Store, config: Config, now: datetime) -> dict[str, Any]:
    """When delivered papers were last fetched again, what it cost and found, when next."""
    cfg = config.followups
    last = last_refresh(store.facts.get(META_KEY))
    wait = cfg.every if last is None or last.succeeded else RETRY_AFTER_FAILURE
    return {
        "enabled": cfg.enabled,
        "every": format_duration(cfg.every),
        "months": cfg.months,
        "last_run": last.data if last else None,
        "next_run": (
            None
            if not cfg.enabled
            else _iso(last.at + wait)
            if last
            else "once a paper is delivered"
        ),
        "changes": store.changes.counts(),
    }


def _subscription_rows(store: Store, config: Config) -> list[dict[str, Any]]:
    states = store.polls.states()
    counts = store.polls.match_counts()
    subs = []
    for sub in config.subscriptions:
        st = states.get(sub.name)
        subs.append(
            {
                "name": sub.name,
                "kind": sub.kind,
                "last_poll": _iso(st.last_poll_at if st else None),
                "last_success": _iso(st.last_success_at if st else None),
                "window_end": st.window_end.isoformat() if st and st.window_end else None,
                "last_found": st.last_found if st else None,
                "last_requests": st.last_requests if st else None,
                "last_new": st.last_new if st else None,
                "matches": counts.get(sub.name, 0),
                # Redacted again: a row written before secrets were kept out may hold one.
                "last_error": safe_message(st.last_error) if st and st.last_error else None,
            }
        )
    return subs


def _undelivered_digests(store: Store) -> dict[str, list[dict[str, Any]]]:
    digests: dict[str, list[dict[str, Any]]] = {}
    for d in store.outbox.undelivered_digests():
        digests.setdefault(d["recipient"], []).append(
            {
                "message_id": d["message_id"],
                "state": d["state"],
                "papers": d["paper_count"],
                "changes": d["change_count"],
                "created": _iso(d["created_at"]),
                "attempts": d["attempts"],
                "last_error": d["last_error"],
            }
        )
    return digests


def print_status(out: dict[str, Any]) -> None:
    daemon = out["daemon"]
    print(f"store: {out['store']} ({out['articles']} articles)")
    print(f"daemon: {daemon['summary']}")
    for job, when in sorted((daemon.get("next_runs") or {}).items()):
        print(f"  next {job}: {when}")
    for s in out["subscriptions"]:
        print(f"\n  {s['name']} [{s['kind']}]: {s['matches']} matches")
        print(
            f"    last poll: {s['last_poll'] or 'never'}; last success: "
            f"{s['last_success'] or 'never'}; found {s['last_found'] or 0}, "
            f"new {s['last_new'] or 0}, {s['last_requests'] or 0} requests to NCBI"
        )
        if s["last_error"]:
            print(f"    LAST ERROR: {s['last_error']}")
    print("\n  recipients:")
    for r in out["recipients"]:
        more = f", {r['awaiting_record']} awaiting a record" if r["awaiting_record"] else ""
        print(
            f"    {r['address']}: {r['undelivered']} papers awaiting delivery{more} "
            f"(reference {r['reference']})"
        )
        for d in r["digests"]:
            tries = f"{d['attempts']} attempt{'' if d['attempts'] == 1 else 's'}"
            what = (
                "FAILED (refused; its papers go in the next digest)"
                if d["state"] == "failed"
                else "pending (retried on the next digest run)"
            )
            print(
                f"      digest {d['message_id']} of {d['created']}, {_contents(d)}: "
                f"{what}, {tries}" + (f"; last error: {d['last_error']}" if d["last_error"] else "")
            )
    if out["awaiting_records"]:
        print("\n  records matched, not stored (awaited from NCBI, or deleted there):")
        for a in out["awaiting_records"]:
            name = f"PMID {a['pmid']}" if a["pmid"] else a["item"]
            print(f"    {name} ({', '.join(a['subscriptions'])}): {_awaited_line(a)}")
    if out["pending_digests"]:
        print(f"  {out['pending_digests']} digests pending (retried on the next digest run)")
    _print_followups(out["followups"])


def _contents(digest: dict[str, Any]) -> str:
    """'3 papers', '2 changes to papers received' or both: a digest may tell only follow-ups."""
    papers, changes = digest["papers"], digest["changes"]
    said = [f"{papers} paper{'' if papers == 1 else 's'}"] if papers or not changes else []
    if changes:
        said.append(f"{changes} change{'' if changes == 1 else 's'} to papers received")
    return ", ".join(said)


def _print_followups(f: dict[str, Any]) -> None:
    if not f["enabled"]:
        print("\n  follow-ups: off ([followups] enabled = false)")
        return
    last = f["last_run"]
    print(
        f"\n  follow-ups (every {f['every']}, papers delivered in the last {f['months']} months):"
    )
    if last is None:
        print("    never run yet")
    else:
        print(
            f"    last run {last['at']}: {last['papers']} papers, {last['requests']} requests, "
            f"{last['changes']} changes found"
            + (f"; ERROR: {last['error']}" if last["error"] else "")
        )
    print(f"    next run: {f['next_run']}")
    counts = {k: v for k, v in f["changes"].items() if k != "told"}
    if counts:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"    changes known: {kinds}; {f['changes']['told']} told to recipients")


def awaited_records(store: Store, config: Config) -> list[dict[str, Any]]:
    """Matched items whose record their source has not given (missing or unreadable), with the retry
    plan of watcher.poll_fetch.record_retry_at."""
    out = []
    for a in store.articles.awaited([s.name for s in config.subscriptions]).values():
        # Imported only for a store that awaits records: watcher.poll_fetch brings the sources'
        # record types and with them lxml, which `status` otherwise never needs.
        from watcher.poll_fetch import record_retry_at

        retry = (
            record_retry_at(a.attempts, a.first_missing_at, a.last_attempt_at, a.deleted_at)
            if a.attempts and a.first_missing_at and a.last_attempt_at
            else None
        )
        out.append(
            {
                "item": a.item,
                "pmid": a.pmid,
                "subscriptions": list(a.subscriptions),
                "attempts": a.attempts,
                "first_missing": _iso(a.first_missing_at),
                "last_attempt": _iso(a.last_attempt_at),
                "reason": a.reason,
                "next_try": _iso(retry) if retry else ("next poll" if not a.attempts else None),
                "given_up": bool(a.attempts) and retry is None and a.deleted_at is None,
                "deleted": _iso(a.deleted_at),
            }
        )
    return out


def _awaited_line(a: dict[str, Any]) -> str:
    if not a["attempts"]:
        return "not asked for yet; fetched at the next poll"
    if a["deleted"]:
        return f"{a['reason']} on {a['deleted']}; not asked for again"
    tries = f"{a['attempts']} {'try' if a['attempts'] == 1 else 'tries'}"
    since = f"{tries} since {a['first_missing']}: {a['reason']}"
    if a["given_up"]:
        return f"{since}; GIVEN UP (not asked for again; deleted or withdrawn at NCBI?)"
    return f"{since}; next try {a['next_try']}"


def daemon_status(heartbeat: str | None, state: str | None, now: datetime) -> dict[str, Any]:
    """Alive when the heartbeat is younger than a few of the daemon's own intervals."""
    info: dict[str, Any] = json.loads(state) if state else {}
    info["heartbeat"] = heartbeat
    if heartbeat is None:
        info["alive"] = False
        info["summary"] = "never seen (start it with `watcher run`)"
        return info
    age = (now - datetime.fromisoformat(heartbeat)).total_seconds()
    info["alive"] = (
        info.get("state") == "running" and age < 3 * min(30.0, info.get("tick_seconds", 30.0)) + 30
    )
    if info["alive"]:
        info["summary"] = f"alive (pid {info.get('pid')}, heartbeat {age:.0f}s ago)"
    elif info.get("state") == "stopped":
        info["summary"] = f"stopped at {info.get('stopped_at')}"
        info.pop("next_runs", None)
    else:
        info["summary"] = f"NOT RESPONDING: last heartbeat {heartbeat} ({age:.0f}s ago)"
    return info


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
