"""The post-chat survey: two questions on a 1-5 scale, never free text (issue 14, SPEC §1)."""
