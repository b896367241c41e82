"""The Textual app: screens, one .tcss file; it calls the services and never writes SQL.

Importing this package loads nothing of Textual; `govtui.tui.app` does.
"""
