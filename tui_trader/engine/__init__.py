"""The engine: the pure bot cycle inside an async orchestrator."""
