"""A minimal consuming service for the kit's tests: records the member
events it handles, fails on purpose when the member's name says so."""
