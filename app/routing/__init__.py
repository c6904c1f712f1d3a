"""Volunteers, presence, the priority queue, offers, atomic claims, transfer and wrap-up."""
