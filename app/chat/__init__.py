"""Visitor chat sessions and their messages: durable, triaged, resumable."""
