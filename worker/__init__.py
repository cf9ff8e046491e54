"""Keeps brand audiences of product passports materialized in Redis."""
