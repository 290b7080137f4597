"""Schema administration: the metadata of both models, migrations, checks and the DDL dump."""
