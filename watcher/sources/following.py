"""A subscription that follows papers (`cites`, `similar`, issue 27), alone or with a `query`.

What a poll asks (docs/citations.md, section 4, "plan B"):
- one by-id elink for all the followed papers (one `id=` each, so every link stays tied to the
  paper it starts from): `pubmed_pubmed_citedin` for `cites`, `pubmed_pubmed` for `similar`,
  both in the one answer when the subscription has both. With `min_score`, the similar papers
  come from `cmd=neighbor_score` (scores are only given there): one more elink;
- one iCite request per 200 `cites` papers (the Open Citation Collection knows citing papers
  PMC does not; ELink knows this week's that iCite's monthly snapshot does not yet);
- on the first poll only, the same elink limited to the last `lookback_days` by Entrez date: the
  papers to announce, found without fetching the others (3 requests where fetching every linked
  record to read its date cost 11 for 10 papers and 2,000 citations). Citing papers only iCite
  knows carry no date in its answer: one esearch per 200 of them (`…[uid] OR …` over the same
  window of creation dates) finds the recent ones without fetching the others.
The records then come through the poll's shared efetch, once each.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from watcher.errors import SourceError, Unreachable
from watcher.identity import ItemKey, pmid_key
from watcher.models import PollState
from watcher.sources.base import CitationLink, Discovery, Records
from watcher.sources.elink import CITEDIN, SIMILAR, LinkAnswer, elink
from watcher.sources.eutils import EUtils, ncbi_today
from watcher.sources.icite import ICite
from watcher.sources.pubmed_search import PubmedSearch
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

# PMIDs per esearch that dates the citing papers only iCite knows (POSTed: ~3 KB of term).
_UIDS_PER_SEARCH = 200


def first_poll(state: PollState | None) -> bool:
    """A subscription never polled with success (poll.py's own test of a first poll)."""
    return state is None or (state.window_end is None and state.last_success_at is None)


class Following:
    def __init__(self, client: EUtils, icite: ICite, search: PubmedSearch) -> None:
        self.client = client
        self.icite = icite
        self.search = search
        self.records: Records = client

    def host(self, sub: Subscription) -> str:
        return urlsplit(self.client.base_url).netloc

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        today = ncbi_today(now)
        links, skipped, icite_only = self.links(sub)
        items: list[ItemKey] = []
        window_end = today
        label = "elink"
        if sub.query is not None:
            found = self.search.find(sub, state, now)
            items += found.items
            window_end = found.window_end or today
            label = "esearch+elink"
        if first_poll(state) and sub.schedule.lookback_days > 0:
            start = today - timedelta(days=sub.schedule.lookback_days)
            recent = self._linked(sub, self.ask(sub, window=(start, today)), windowed=True)
            now_linked = {(x.kind, x.followed, x.pmid) for x in links}
            items += [
                pmid_key(x.pmid) for x in recent if (x.kind, x.followed, x.pmid) in now_linked
            ]
            items += [pmid_key(p) for p in self._created(icite_only, start, today)]
        items = [i for i in dict.fromkeys(items) if i not in {pmid_key(p) for p in sub.followed}]
        return Discovery(
            items, label, window_end=window_end, skipped=tuple(skipped), links=tuple(links)
        )

    def links(self, sub: Subscription) -> tuple[list[CitationLink], list[str], set[int]]:
        """Every link of the followed papers as ELink and iCite give them now, deduplicated;
        a line for each followed paper iCite holds no record of; the citing papers only iCite
        knows."""
        found = self._linked(sub, self.ask(sub))
        from_elink = {x.pmid for x in found if x.kind == "cites"}
        if sub.similar and sub.min_score is not None:
            scored = elink(self.client, sub.similar, linkname=SIMILAR, scored=True)
            _refused(scored)
            found += self._similar(sub, scored, top=sub.top)
        skipped: list[str] = []
        if sub.cites:
            try:
                cited = self.icite.cited_by(sub.cites)
            except Unreachable as exc:
                # iCite down is not NCBI down: the poll's other PubMed subscriptions go on.
                raise SourceError(str(exc)) from None
            for pmid in cited.unknown:
                message = (
                    f"{sub.name}: iCite holds no record of PMID {pmid} (not yet, or not at "
                    "all): its citing papers come from PubMed Central's links alone"
                )
                log.warning("%s", message)
                skipped.append(message)
            for followed, citing in cited.citing.items():
                found += [CitationLink("cites", followed, p) for p in sorted(citing)]
        unique: dict[tuple[str, int, int], CitationLink] = {}
        for x in found:
            unique.setdefault((x.kind, x.followed, x.pmid), x)
        icite_only = {x.pmid for x in found if x.kind == "cites"} - from_elink
        return list(unique.values()), skipped, icite_only

    def _created(self, pmids: set[int], start: date, end: date) -> list[int]:
        """Those of `pmids` created from `start` to `end`: one esearch per _UIDS_PER_SEARCH."""
        out: list[int] = []
        wanted = sorted(pmids - {0})
        for i in range(0, len(wanted), _UIDS_PER_SEARCH):
            term = " OR ".join(f"{p}[uid]" for p in wanted[i : i + _UIDS_PER_SEARCH])
            out += self.client.search(f"({term})", start, end, self.search.datetype).pmids
        return out

    def ask(self, sub: Subscription, window: tuple[date, date] | None = None) -> LinkAnswer:
        """The one by-id elink of the subscription's papers: their citing papers and similar
        articles by rank (without `min_score`'s scores: those need their own elink); within
        `window`, every followed paper's links, to be matched with the whole answer's."""
        by_rank = bool(sub.similar) and (sub.min_score is None or window is not None)
        ids = sub.followed if by_rank else sub.cites
        if not ids:
            return LinkAnswer({})
        name = None if (by_rank and sub.cites) else (SIMILAR if by_rank else CITEDIN)
        answer = elink(self.client, ids, linkname=name, window=window)
        _refused(answer)
        return answer

    def _linked(
        self, sub: Subscription, answer: LinkAnswer, windowed: bool = False
    ) -> list[CitationLink]:
        out = [
            CitationLink("cites", p, pmid)
            for p in sub.cites
            if p in answer.sets
            for pmid, _ in answer.sets[p].links.get(CITEDIN, [])
        ]
        if sub.min_score is None or windowed:
            # A windowed answer comes newest first, not by rank: its similar papers are all
            # kept here and matched with the ranked answer's by the caller.
            out += self._similar(sub, answer, top=None if windowed else sub.top)
        return out

    @staticmethod
    def _similar(sub: Subscription, answer: LinkAnswer, top: int | None) -> list[CitationLink]:
        out = []
        for p in sub.similar:
            ranked = answer.sets[p].links.get(SIMILAR, []) if p in answer.sets else []
            kept = [
                (pmid, score)
                for pmid, score in ranked
                if sub.min_score is None or score is None or score >= sub.min_score
            ]
            out += [CitationLink("similar", p, pmid, score) for pmid, score in kept[:top]]
        return out


def _refused(answer: LinkAnswer) -> None:
    """An <ERROR> in a LinkSet: NCBI refused one of the ids. The watcher sends only PMIDs the
    config checked, so this is NCBI's fault of the moment (it has answered an unknown PMID four
    ways over the years): failed, and asked again next poll, rather than read as "no links"."""
    if answer.errors:
        raise SourceError(f"elink refused an id: {answer.errors[0]}")
