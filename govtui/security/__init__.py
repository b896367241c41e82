"""Second factors and secrets: TOTP codes (pyotp) and the OS keyring. No database, no Textual."""
