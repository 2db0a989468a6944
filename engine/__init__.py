"""The one wiring of strategy signals → decision step (position, stops, sizing, risk) → fills → ledger,
used by the backtest loop and, unchanged, by paper and live trading."""
