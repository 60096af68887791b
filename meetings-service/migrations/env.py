from meetings.models import Base
from verbund.migrations import run_env

run_env(Base.metadata)
