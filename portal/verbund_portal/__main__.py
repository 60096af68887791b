"""``python -m verbund_portal``: serve the portal (what ``verbund up`` starts)."""
from verbund_portal.app import main

raise SystemExit(main())
