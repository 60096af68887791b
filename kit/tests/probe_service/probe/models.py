from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()

effects = Table(
    "effects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("member_name", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("tx", String(32), nullable=True),  # which transaction wrote it (one per consumed batch)
)
