"""The sync run: change feed -> map -> validate -> match -> plan -> apply -> record."""
