"""What must hold in a store between the soak's cycles, whatever failed during them: SQL that
finds rows breaking a rule (none may come back), and the figures that may only move forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from watcher.store import Store

# What must hold in the store between cycles, whatever failed during them.
CHECKS = {
    "a match without its record that is not owed (awaited_records)": """
        SELECT m.subscription || ' ' || m.item FROM matches m
        LEFT JOIN articles a ON a.item = m.item
        LEFT JOIN awaited_records w ON w.item = m.item
        WHERE a.item IS NULL AND w.item IS NULL AND m.deliver""",
    "an owed record nobody matched": """
        SELECT w.item FROM awaited_records w LEFT JOIN matches m ON m.item = w.item
        WHERE m.item IS NULL""",
    "an owed record already stored": """
        SELECT w.item FROM awaited_records w JOIN articles a ON a.item = w.item""",
    "a delivery without a sent digest of that recipient carrying the paper": """
        SELECT d.recipient || ' ' || d.item FROM deliveries d
        LEFT JOIN digests g ON g.id = d.digest_id AND g.state = 'sent'
            AND g.recipient = d.recipient
        LEFT JOIN digest_items i ON i.digest_id = d.digest_id AND i.item = d.item
        WHERE g.id IS NULL OR i.item IS NULL""",
    "a paper of a sent digest delivered by another digest (mailed twice)": """
        SELECT g.id || ' ' || i.item FROM digests g
        JOIN digest_items i ON i.digest_id = g.id
        LEFT JOIN deliveries d ON d.recipient = g.recipient AND d.item = i.item
        WHERE g.state = 'sent' AND (d.digest_id IS NULL OR d.digest_id <> g.id)""",
    "a pending digest carrying a paper with no record": """
        SELECT g.id || ' ' || i.item FROM digests g JOIN digest_items i ON i.digest_id = g.id
        LEFT JOIN articles a ON a.item = i.item
        WHERE g.state = 'pending' AND a.item IS NULL""",
    "a pending digest carrying a paper already delivered to its recipient": """
        SELECT g.id || ' ' || i.item FROM digests g JOIN digest_items i ON i.digest_id = g.id
        JOIN deliveries d ON d.recipient = g.recipient AND d.item = i.item
        WHERE g.state = 'pending'""",
    "a paper in two unsent digests of one recipient": """
        SELECT g.recipient || ' ' || i.item FROM digests g
        JOIN digest_items i ON i.digest_id = g.id
        WHERE g.state = 'pending' GROUP BY g.recipient, i.item HAVING count(*) > 1""",
    "a digest whose paper_count is not its papers": """
        SELECT g.id FROM digests g LEFT JOIN digest_items i ON i.digest_id = g.id
        GROUP BY g.id, g.paper_count HAVING count(i.item) <> g.paper_count""",
    "a digest in an unknown state, or sent without a time": """
        SELECT id FROM digests WHERE state NOT IN ('pending', 'sent', 'failed')
            OR (state = 'sent') <> (sent_at IS NOT NULL)""",
    "a delivery to someone who does not follow a subscription that matched it": """
        SELECT d.recipient || ' ' || d.item FROM deliveries d
        WHERE NOT EXISTS (SELECT 1 FROM matches m JOIN subscribers s
            ON s.subscription = m.subscription AND s.recipient = d.recipient
            WHERE m.item = d.item)""",
    "an identifier naming an item neither stored nor matched": """
        SELECT i.scheme || ':' || i.value FROM identifiers i
        WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.item = i.item)
            AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.item = i.item)""",
}


@dataclass
class Progress:
    """What may only move forward: each subscription's window and successful poll, each digest
    schedule's last run, the sent digests."""

    seen: dict[str, Any] = field(default_factory=dict)

    def check(self, conn: Any) -> list[str]:
        now: dict[str, Any] = {}
        for name, end, success in conn.execute(
            text("SELECT name, window_end, last_success_at FROM subscriptions")
        ):
            now[f"window_end {name}"] = end
            now[f"last_success_at {name}"] = success
        for schedule, last in conn.execute(text("SELECT schedule, last_run_at FROM digest_runs")):
            now[f"digest run {schedule}"] = last
        now["sent digests"] = conn.execute(
            text("SELECT count(*) FROM digests WHERE state = 'sent'")
        ).scalar_one()
        now["deliveries"] = conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
        problems = [
            f"{key} went back: {self.seen[key]} -> {value}"
            for key, value in now.items()
            if self.seen.get(key) is not None and (value is None or value < self.seen[key])
        ]
        self.seen = now
        return problems


def check_store(store: Store, progress: Progress) -> list[str]:
    problems = []
    with store.engine.connect() as conn:
        for what, sql in CHECKS.items():
            rows = [r[0] for r in conn.execute(text(sql))]
            if rows:
                problems.append(f"{what}: {len(rows)} (e.g. {rows[:3]})")
        problems += progress.check(conn)
    return problems
