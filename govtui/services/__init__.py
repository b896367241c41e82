"""Domain operations. Each takes a session and the acting operator, checks policy, and writes
the change with its audit event (and, later, its directory operations) in the caller's one
transaction. Nothing here imports Textual."""
