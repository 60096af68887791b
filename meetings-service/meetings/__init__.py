"""meetings-service: 1:1 meetings at matchmaking days."""
