"""One JSON serialisation per article: the authors, MeSH, keywords and publication types
columns (each a second copy of what `record` holds) and the abstract's flat text (a second copy
of its sections in `record`) are dropped; nothing reads them apart from `record`.

The copies made the database and every ingest larger for nothing (bench/README.md: design
notes). The rows keep every record whole, so nothing is lost.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DROPPED = ("abstract", "authors", "publication_types", "mesh", "keywords")


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        for column in _DROPPED:
            batch.drop_column(column)


def downgrade() -> None:
    # The JSON copies come back from `record`; the flat abstract stays empty (nothing read it).
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("abstract", sa.Text))
        for column in _DROPPED[1:]:
            batch.add_column(sa.Column(column, sa.JSON, nullable=False, server_default="[]"))
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in _DROPPED[1:]:
        copy = f"json_extract(record, '$.{column}')" if sqlite else f"record -> '{column}'"
        op.execute(f"UPDATE articles SET {column} = {copy}")
