from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()

effects = Table(
    "effects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("member_name", String(200), nullable=False),
)
