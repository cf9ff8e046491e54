"""MongoDB access: the passport and wallet stores (read only) and the audience documents."""
