"""The warehouse: a dbt project (silver, gold) built over the bronze lake."""
