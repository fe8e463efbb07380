"""SQL only: the peewee models and the queries the rules (chatd.ops) run.

Nothing here decides who may do what; each function is one query or one
statement, run inside the caller's transaction (models.transaction).
"""
