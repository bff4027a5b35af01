"""The harness the crash and soak tests run on, shared with the scripts under bench/ that run the
long versions (bench/crash.py, bench/soak.py, bench/stress_digest.py): the tests never import
bench/, bench imports this."""
