"""Market data: ingest, validation, Parquet catalog, bars, order-flow features, synthesis."""
