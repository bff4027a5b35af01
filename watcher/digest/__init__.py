"""The digest: what each recipient is sent, chosen, grouped, ordered, presented and rendered.
All of it is pure: data in, data out. Sending, the outbox and its bookkeeping are delivery.py's.

- build.py: one recipient's papers, trial updates and follow-ups → a DigestContext;
- context.py: that context and the dataclasses the templates read (Paper, Group, FollowUp …);
- present.py: a record, a change, the period's drugs as those dataclasses;
- badges.py: a paper's badges and notices (publication types, retractions, errata);
- render.py: the subject, text and HTML parts (Jinja2), the HTML fitted to its size budget.
"""
