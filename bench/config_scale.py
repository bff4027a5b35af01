"""`watcher check` at an institution's size: 1,000 / 5,000 / 20,000 subscriptions with queries
as long as the starter config's (about 650 characters), one reader for every two subscriptions
(each subscription mailing three of them, by name-addr), a [[recipient]] table for one reader in
ten, the subscriptions in one file per team of 500 (`include = ["teams/*.toml"]`).

    python bench/config_scale.py [--sizes 1000,5000,20000] [--one-file]

For each size: the bytes written, then processor time (time.process_time, which other jobs on the
shared machine disturb less than wall time) of
- load: `load_config` (read, parse, check every key);
- store: opening a fresh SQLite store and making it agree with the subscriptions (what `check`
  does before printing; the store's cost, shown apart);
- print: `print_check`'s listing (to /dev/null), each subscription's next runs and readers;
and the time per subscription of load + print, whose flatness across sizes is the goal (linear).

`--one-file` writes every subscription in the main file and lifts the 1 MB bound on it, for code
that has no `include` (the figures before it: run this script with another checkout first on
PYTHONPATH).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TEAM = 500  # subscriptions per included file
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

# A query in the starter config's style: a condition's MeSH heading OR its free-text variants,
# AND the drugs under their INN, code names and brands, then the animal-study NOT clauses.
QUERY = (
    '("Diabetes Mellitus, Type 1"[mh] OR "type 1 diabetes"[tiab] OR "T1D"[tiab] OR '
    '"autoimmune diabetes"[tiab] OR "insulin-dependent diabetes"[tiab] OR "IDDM"[tiab] OR '
    '"juvenile diabetes"[tiab] OR "juvenile-onset diabetes"[tiab]) AND '
    '(drug{i}[tw] OR "drug {i}"[tw] OR "DRG-{i}"[tw] OR "DRG {i}"[tw] OR brand{i}[tw] OR '
    '("Antibodies, Monoclonal"[mh] AND "CD{i}"[tiab]) OR "anti-CD{i}"[tiab] OR '
    '"CD{i} antibod*"[tiab]) '
    "NOT (animals[mh] NOT humans[mh]) NOT ((mice[ti] OR mouse[ti] OR murine[ti] OR rat[ti] "
    'OR rats[ti] OR "NOD mice"[ti] OR primates[ti]) NOT (patient*[ti] OR participant*[tiab] OR '
    "people[ti] OR adults[ti] OR children[ti] OR adolescents[ti]))"
)


def subscription(i: int, readers: int) -> str:
    who = ", ".join(
        f'"Dr Reader {r} <reader{r}@example.org>"' for r in (i % readers, (i * 7 + 1) % readers)
    )
    return (
        f"[[subscription]]\nname = \"Search {i}\"\nquery = '{QUERY.format(i=i)}'\n"
        f'recipients = [{who}, "lab{i % 50}@example.org"]\n\n'
    )


def write_config(folder: Path, size: int, one_file: bool) -> Path:
    readers = max(1, size // 2)
    main = folder / "watcher.toml"
    head = (
        '[store]\nurl = "sqlite:///watcher.db"\n[ncbi]\nemail = "bench@example.org"\n'
        '[mail]\nmaildir = "mail"\n'
    )
    tables = "".join(
        f'[[recipient]]\naddress = "reader{r}@example.org"\norder = "evidence"\n\n'
        for r in range(0, readers, 10)
    )
    if one_file:
        subs = "".join(subscription(i, readers) for i in range(size))
        main.write_text(head + "\n" + subs + tables)
        return main
    (folder / "teams").mkdir()
    for start in range(0, size, TEAM):
        body = "".join(subscription(i, readers) for i in range(start, min(size, start + TEAM)))
        (folder / "teams" / f"team{start // TEAM:03d}.toml").write_text(body)
    main.write_text('include = ["teams/*.toml"]\n' + head + "\n" + tables)
    return main


def measure(size: int, one_file: bool) -> dict[str, float]:
    from watcher import toml_reading
    from watcher.check import print_check
    from watcher.config import load_config
    from watcher.wiring import open_store

    if one_file:
        toml_reading.MAX_CONFIG_BYTES = 1 << 40  # code without `include`: one file holds all
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config(Path(tmp), size, one_file)
        written = sum(p.stat().st_size for p in Path(tmp).rglob("*.toml"))
        t0 = time.process_time()
        config = load_config(path)
        t1 = time.process_time()
        store = open_store(config, NOW)
        t2 = time.process_time()
        with open(os.devnull, "w") as out, contextlib.redirect_stdout(out):
            print_check(config, store, NOW)
        t3 = time.process_time()
        store.close()
    assert len(config.subscriptions) == size
    return {"bytes": written, "load": t1 - t0, "store": t2 - t1, "print": t3 - t2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--one-file", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}")
    print("| subscriptions | MB | load s | store s | print s | load+print ms per subscription |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        m = measure(size, args.one_file)
        per = (m["load"] + m["print"]) / size * 1000
        print(
            f"| {size:,} | {m['bytes'] / 1e6:.1f} | {m['load']:.2f} | {m['store']:.2f} "
            f"| {m['print']:.2f} | {per:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
