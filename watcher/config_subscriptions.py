"""What is watched, for whom and when: [defaults], [[subscription]] and [[recipient]] read by
the keys subscriptions.py's Schedule, Subscription and Recipient declare, then checked key by
key. A subscription's schedule keys are [defaults]' over [defaults]; a reader's table refines
how one of the subscriptions' recipients gets their digest, over [mail] and [defaults].
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher.addresses import normalise_address, parse_mailbox
from watcher.config_authors import MAX_AUTHORS, author_query, author_term
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
from watcher.toml_reading import MAX_QUERY, TableReader, names, parse_duration, suggest

MAX_LIKE = 200  # `like` PMIDs per subscription: a reader's own papers, not a library
# `cites` / `similar` PMIDs per subscription: the one by-id elink of a poll stays one request
# (POSTed past 100 ids, docs/citations.md), and iCite takes 200 a request (5 for 1,000).
MAX_FOLLOWED = 1_000
MAX_RECIPIENTS = 1_000

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_NOT_BRACKET = re.compile(r"[^()]+")
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
        if parent is None or (v["digest_cron"], v["timezone"]) != (
            parent.digest_cron,
            parent.timezone,
        ):  # [defaults]' own were checked once: not again for each subscription that keeps them
            self.digest_time(key, v["digest_cron"], v["timezone"])
        self.within(f"{key}.lookback_days", v["lookback_days"], 0, 3650)
        return Schedule(**v)

    def digest_time(self, key: str, cron: str, tz: str) -> tuple[str, str]:
        self.checked(f"{key}.timezone", tz, _check_timezone)
        self.checked(f"{key}.digest_cron", cron, _check_cron)
        return cron, tz

    def subscriptions(
        self, raw: Any, defaults: Schedule, seen: dict[str, tuple[Path, str]]
    ) -> tuple[Subscription, ...]:
        """This file's [[subscription]] tables. `seen` holds each name read so far, in this file
        and the ones before it, with its file and key: a name given twice names both places."""
        if not isinstance(raw, list):
            raise self.fail("subscription", "must be an array of tables: write [[subscription]]")
        subs = []
        for i, entry in enumerate(raw):
            key = f"subscription[{i}]"
            sub = self.subscription(entry, key, defaults)
            if sub.name in seen:
                path, where = seen[sub.name]
                there = where if path == self.path else f"{where} in {path}"
                raise self.fail(f"{key}.name", f"{sub.name!r} is already the name of {there}")
            seen[sub.name] = (self.path, key)
            subs.append(sub)
        return tuple(subs)

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
        kinds = [k for k in KINDS if data.get(k) is not None]
        follows = self.follow_keys(data, key, v)
        if follows and any(k != "query" for k in kinds):
            raise self.fail(
                key,
                "`cites` and `similar` follow PubMed papers: they go alone or with a `query`, "
                "not with `rss`, `europepmc` or `trials`",
            )
        if "author" in data:
            if kinds not in ([], ["query"]):
                raise self.fail(
                    f"{key}.author",
                    f"finds PubMed papers: it goes with `query` or alone, not `{kinds[0]}`",
                )
            v["author"], v["query"] = self.authors(f"{key}.author", v["author"], v["query"])
        elif not follows and len(kinds) != 1:
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

    def authors(
        self, where: str, written: str | list[Any], query: str | None
    ) -> tuple[tuple[str, ...], str]:
        """`author` (one or a list) → the authors as written, and the query that finds their
        papers (ANDed with the subscription's own query)."""
        names = [written] if isinstance(written, str) else written
        if not names:
            raise self.fail(where, 'lists nobody: write an ORCID iD or a name such as "Herold KC"')
        if len(names) > MAX_AUTHORS:
            raise self.fail(where, f"lists {len(names):,}; at most {MAX_AUTHORS}")
        terms: dict[str, None] = {}
        for i, name in enumerate(names):
            at = where if isinstance(written, str) else f"{where}[{i}]"
            self.typed(at, name, str)
            terms.setdefault(self.checked(at, name, author_term), None)
        combined = author_query(list(terms), query)
        self.short(where, combined, MAX_QUERY)
        return tuple(n.strip() for n in names), combined

    def addresses(
        self, where: str, recipients: list[Any]
    ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """A subscription's recipients → (their addresses, (address, display name) pairs)."""
        if not recipients:
            raise self.fail(where, "lists nobody: add at least one email address")
        if len(recipients) > MAX_RECIPIENTS:
            raise self.fail(where, f"lists {len(recipients):,}; at most {MAX_RECIPIENTS:,}")
        clean: dict[str, None] = {}
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
            clean.setdefault(address, None)  # a dict: in order, each once, without a scan
            if display and address not in display_names:
                display_names[address] = display
        return tuple(clean), tuple(display_names.items())

    def recipients(
        self,
        raw: Any,
        listed: Collection[str],
        mail: MailConfig,
        defaults: Schedule,
        seen: dict[str, tuple[Path, str]],
    ) -> tuple[Recipient, ...]:
        """This file's [[recipient]] tables, each for one of `listed` (every subscription's
        recipients, a set); `seen`, the addresses given a table so far, in any file."""
        if not isinstance(raw, list):
            raise self.fail("recipient", "must be an array of tables: write [[recipient]]")
        if len(raw) > MAX_RECIPIENTS:
            raise self.fail("recipient", f"has {len(raw):,} tables; at most {MAX_RECIPIENTS:,}")
        out: list[Recipient] = []
        for i, entry in enumerate(raw):
            key = f"recipient[{i}]"
            r = self.recipient(entry, key, mail, defaults)
            if r.address not in listed:
                raise self.fail(
                    f"{key}.address",
                    f"{r.address!r} is in no subscription's recipients: add it to the "
                    f"subscriptions they should get{suggest(r.address, sorted(listed))}",
                )
            if r.address in seen:
                path, where = seen[r.address]
                there = where if path == self.path else f"{where} in {path}"
                raise self.fail(f"{key}.address", f"{r.address!r} has a table already: {there}")
            seen[r.address] = (self.path, key)
            out.append(r)
        return tuple(out)

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
    # Only the brackets, found in C: a Python loop over every character of 20,000 long queries
    # was a third of loading the config.
    for ch in _NOT_BRACKET.sub("", query):
        depth += 1 if ch == "(" else -1
        if depth < 0:
            raise ValueError("has a ')' without its '('")
    if depth:
        raise ValueError("has a '(' that is never closed")
    if query.count('"') % 2:
        raise ValueError("has an unbalanced '\"'")
