"""The node's database: tables, migrations, the database thread, and the questions asked of it."""
