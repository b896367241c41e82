"""Keeping LDAP / Active Directory in step with the grants: the ldap3 client, the outbox
worker and reconciliation. No Textual here."""
