import os
import sys
from pathlib import Path

PROBE = str(Path(__file__).parent / "probe_service")
sys.path.insert(0, PROBE)
# Service processes started by the tests import the probe service too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PROBE, os.environ.get("PYTHONPATH")]))
