"""The resource library (hotlines, coping steps, apps), canned replies and what volunteers send.

Everything here is reviewed text that an admin entered; nothing is generated. Services add and
flush, never commit: the request, socket frame or CLI command owns the transaction.
"""
