from probe.models import metadata
from verbund.migrations import run_env

run_env(metadata)
