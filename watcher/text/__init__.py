"""Pure text helpers that both the readers (watcher/sources/) and the digest use: sub- and
superscripts, trial registry numbers, abstract section labels, one-line text. They import
nothing but models, so a source never has to import the digest to share them."""
