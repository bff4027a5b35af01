"""What is watched, for whom and when: [defaults], [[subscription]] and [[recipient]] read by
the keys subscriptions.py's Schedule, Subscription and Recipient declare, then checked key by
key. A subscription's schedule keys are [defaults]' over [defaults]; a reader's table refines
how one of the subscriptions' recipients gets their digest, over [mail] and [defaults].
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from watcher.addresses import normalise_address, parse_mailbox
from watcher.config_keys import (
    ABSTRACTS,
    DEFAULTS,
    ORDERS,
    RECIPIENT,
    RECIPIENT_SCHEDULE,
    SUBSCRIPTION,
    TABLES,
    MailConfig,
)
from watcher.subscriptions import FOLLOW, KINDS, Recipient, Schedule, Subscription
from watcher.toml_reading import TableReader, names, parse_duration, suggest

MAX_LIKE = 200  # `like` PMIDs per subscription: a reader's own papers, not a library
# `cites` / `similar` PMIDs per subscription: the one by-id elink of a poll stays one request
# (POSTed past 100 ids, docs/citations.md), and iCite takes 200 a request (5 for 1,000).
MAX_FOLLOWED = 1_000
MAX_RECIPIENTS = 1_000

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_NAME = re.compile(r"^[\w][\w .,:;+()'/&-]{0,79}$")


class SubscriptionReader(TableReader):
    """The tables that say what to watch and for whom; config.py's reader adds the rest."""

    def defaults(self, raw: Any) -> Schedule:
        return self.schedule(self.table(raw, "defaults", names(DEFAULTS)), "defaults", None)

    def schedule(self, data: Mapping[str, Any], key: str, parent: Schedule | None) -> Schedule:
        """[defaults], or a subscription's keys over them (`parent`)."""
        v = self.values(data, key, DEFAULTS, parent)
        if "poll_every" in data:
            text = v["poll_every"]
            v["poll_every"] = self.checked(f"{key}.poll_every", text, parse_duration)
            if v["poll_every"] < timedelta(minutes=1):
                self.warnings.append(
                    f"{self.path}: {key}.poll_every: {text} is under a minute; fine for a demo, "
                    "but NCBI asks for polls no more often than needed"
                )
        self.digest_time(key, v["digest_cron"], v["timezone"])
        self.within(f"{key}.lookback_days", v["lookback_days"], 0, 3650)
        return Schedule(**v)

    def digest_time(self, key: str, cron: str, tz: str) -> tuple[str, str]:
        self.checked(f"{key}.timezone", tz, _check_timezone)
        self.checked(f"{key}.digest_cron", cron, _check_cron)
        return cron, tz

    def subscriptions(self, raw: Any, defaults: Schedule) -> tuple[Subscription, ...]:
        if not isinstance(raw, list):
            raise self.fail("subscription", "must be an array of tables: write [[subscription]]")
        if not raw:
            raise self.fail("subscription", "no [[subscription]] entries: nothing to watch")
        subs = tuple(
            self.subscription(s, f"subscription[{i}]", defaults) for i, s in enumerate(raw)
        )
        seen: dict[str, int] = {}
        for i, sub in enumerate(subs):
            if sub.name in seen:
                raise self.fail(
                    f"subscription[{i}].name",
                    f"{sub.name!r} is already the name of subscription[{seen[sub.name]}]",
                )
            seen[sub.name] = i
        return subs

    def subscription(self, raw: Any, key: str, defaults: Schedule) -> Subscription:
        data = self.table(raw, key, names(TABLES["[[subscription]]"]))
        v = self.values(data, key, SUBSCRIPTION)
        v["name"] = v["name"].strip()
        if not _NAME.match(v["name"]):
            raise self.fail(
                f"{key}.name",
                "use up to 80 letters, digits, spaces and simple "
                "punctuation (it appears in email subjects)",
            )
        follows = self.follow_keys(data, key, v)
        if follows and any(data.get(k) is not None for k in KINDS if k != "query"):
            raise self.fail(
                key,
                "`cites` and `similar` follow PubMed papers: they go alone or with a `query`, "
                "not with `rss`, `europepmc` or `trials`",
            )
        if not follows and sum(data.get(k) is not None for k in KINDS) != 1:
            raise self.fail(
                key,
                "needs exactly one of `query` (a PubMed search), `rss` (a PubMed RSS feed URL), "
                "`europepmc` (a Europe PMC search) or `trials` (a ClinicalTrials.gov search); "
                "or `cites`/`similar` (PMIDs of papers to follow)",
            )
        for kind in ("query", "europepmc", "trials"):
            if v[kind] is not None:
                self.checked(f"{key}.{kind}", v[kind], _check_query)
        if v["rss"] is not None:
            self.http_url(f"{key}.rss", v["rss"])
        v["recipients"], v["display_names"] = self.addresses(f"{key}.recipients", v["recipients"])
        v["schedule"] = self.schedule(data, key, defaults)
        if len(v["like"]) > MAX_LIKE:
            raise self.fail(f"{key}.like", f"lists {len(v['like']):,} PMIDs; at most {MAX_LIKE}")
        for i, pmid in enumerate(v["like"]):
            if isinstance(pmid, bool) or not isinstance(pmid, int) or pmid <= 0:
                raise self.fail(f"{key}.like[{i}]", f"{pmid!r} is not a PMID (a number)")
        v["like"] = tuple(v["like"])
        return Subscription(**v)

    def follow_keys(self, data: Mapping[str, Any], key: str, v: dict[str, Any]) -> bool:
        """`cites`, `similar`, `top` and `min_score` checked (in `v`, the PMIDs as tuples);
        whether the subscription follows any paper."""
        for name in FOLLOW:
            pmids = v[name]  # an array: the reader checked its TOML type
            if len(pmids) > MAX_FOLLOWED:
                raise self.fail(
                    f"{key}.{name}", f"lists {len(pmids):,} PMIDs; at most {MAX_FOLLOWED}"
                )
            for i, pmid in enumerate(pmids):
                if isinstance(pmid, bool) or not isinstance(pmid, int) or not 0 < pmid < 10**9:
                    raise self.fail(f"{key}.{name}[{i}]", f"{pmid!r} is not a PMID (a number)")
            if len(set(pmids)) < len(pmids):
                twice = next(p for p in pmids if pmids.count(p) > 1)
                raise self.fail(f"{key}.{name}", f"lists PMID {twice} twice")
            v[name] = tuple(pmids)
        self.within(f"{key}.top", v["top"], 1, 100)
        if v["min_score"] is not None:
            self.within(f"{key}.min_score", v["min_score"], 1, 2**31 - 2)
        for name in ("top", "min_score"):
            if name in data and not v["similar"]:
                raise self.fail(f"{key}.{name}", "applies to `similar` only, and there is none")
        return bool(v["cites"] or v["similar"])

    def addresses(
        self, where: str, recipients: list[Any]
    ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """A subscription's recipients → (their addresses, (address, display name) pairs)."""
        if not recipients:
            raise self.fail(where, "lists nobody: add at least one email address")
        if len(recipients) > MAX_RECIPIENTS:
            raise self.fail(where, f"lists {len(recipients):,}; at most {MAX_RECIPIENTS:,}")
        clean: list[str] = []
        display_names: dict[str, str] = {}
        for i, text in enumerate(recipients):
            at = f"{where}[{i}]"
            if not isinstance(text, str):
                raise self.fail(at, f"{text!r} is not an email address")
            self.short(at, text)
            display, address = self.checked(at, text, parse_mailbox)
            if "@localhost" in address and not _EMAIL.match(address):
                raise self.fail(at, f"{text!r} is not an email address")
            address = normalise_address(address)
            if address not in clean:
                clean.append(address)
            if display and address not in display_names:
                display_names[address] = display
        return tuple(clean), tuple(display_names.items())

    def recipients(
        self, raw: Any, subs: tuple[Subscription, ...], mail: MailConfig, defaults: Schedule
    ) -> tuple[Recipient, ...]:
        if not isinstance(raw, list):
            raise self.fail("recipient", "must be an array of tables: write [[recipient]]")
        if len(raw) > MAX_RECIPIENTS:
            raise self.fail("recipient", f"has {len(raw):,} tables; at most {MAX_RECIPIENTS:,}")
        listed = sorted({r for s in subs for r in s.recipients})
        out: dict[str, Recipient] = {}
        for i, entry in enumerate(raw):
            r = self.recipient(entry, f"recipient[{i}]", mail, defaults)
            if r.address not in listed:
                raise self.fail(
                    f"recipient[{i}].address",
                    f"{r.address!r} is in no subscription's recipients: add it to the "
                    f"subscriptions they should get{suggest(r.address, listed)}",
                )
            if r.address in out:
                raise self.fail(f"recipient[{i}].address", f"{r.address!r} has a table already")
            out[r.address] = r
        return tuple(out.values())

    def recipient(self, raw: Any, key: str, mail: MailConfig, defaults: Schedule) -> Recipient:
        data = self.table(raw, key, names(TABLES["[[recipient]]"]))
        v = self.values(data, key, RECIPIENT, mail)  # abstract, max_items, order: [mail]'s
        v["name"], address = self.checked(f"{key}.address", v["address"], parse_mailbox)
        v["address"] = normalise_address(address)
        # Their own schedule: their cron in their zone, else [defaults]' (a reader in Tokyo
        # writing only `timezone` gets [defaults]' cron at that hour of their day).
        own = self.values(data, key, RECIPIENT_SCHEDULE, defaults)
        v["schedule"] = self.digest_time(key, own["digest_cron"], own["timezone"])
        self.choice(f"{key}.abstract", v["abstract"], ABSTRACTS)
        self.within(f"{key}.max_items", v["max_items"], 1, 1000)
        self.choice(f"{key}.order", v["order"], ORDERS)
        return Recipient(**v)


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a folder of the zone database ("Europe") or too long for a
        # file name; zoneinfo lets those through as IsADirectoryError and ENAMETOOLONG.
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Europe/Paris'") from None


def _check_cron(cron: str) -> None:
    from watcher.schedule import check_cron

    if len(cron.split()) not in (5, 6):
        raise ValueError(f"{cron!r} is not a crontab line of 5 fields, e.g. '0 7 * * mon'")
    try:
        check_cron(cron)
    except ValueError as exc:
        raise ValueError(f"{cron!r} is not a valid crontab line: {exc}") from None


def _check_query(query: str) -> None:
    depth = 0
    for ch in query:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError("has a ')' without its '('")
    if depth:
        raise ValueError("has a '(' that is never closed")
    if query.count('"') % 2:
        raise ValueError("has an unbalanced '\"'")
