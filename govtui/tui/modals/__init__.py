"""Modal dialogs, one module each: they ask, show, or run one action and report its result."""
